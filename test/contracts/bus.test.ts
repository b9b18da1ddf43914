import { MemoryBus } from "../../services/shared/adapters/memory/memory-bus.ts";
import { busContract } from "./bus.suite.ts";

busContract("MemoryBus", async () => ({ bus: new MemoryBus(), topic: async (name) => name }));
