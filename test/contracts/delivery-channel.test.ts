import { MemoryDeliveryChannel } from "../../services/shared/adapters/memory/memory-delivery-channel.ts";
import { deliveryChannelContract } from "./delivery-channel.suite.ts";

deliveryChannelContract("MemoryDeliveryChannel", async () => ({
  channel: new MemoryDeliveryChannel(),
}));
