import { MemorySessionRegistry } from "../../services/shared/adapters/memory/memory-session-registry.ts";
import { sessionRegistryContract } from "./session-registry.suite.ts";

sessionRegistryContract("MemorySessionRegistry", async () => ({
  registry: new MemorySessionRegistry(),
}));
