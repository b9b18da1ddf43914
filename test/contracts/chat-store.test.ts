import { MemoryChatStore } from "../../services/shared/adapters/memory/memory-chat-store.ts";
import { chatStoreContract } from "./chat-store.suite.ts";

chatStoreContract("MemoryChatStore", async (region) => ({ store: new MemoryChatStore(region) }));
