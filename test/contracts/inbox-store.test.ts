import { MemoryInboxStore } from "../../services/shared/adapters/memory/memory-inbox-store.ts";
import { inboxStoreContract } from "./inbox-store.suite.ts";

inboxStoreContract("MemoryInboxStore", async (region) => ({ store: new MemoryInboxStore(region) }));
