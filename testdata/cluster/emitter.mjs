// Emits with @socket.io/redis-emitter on REDIS_URL: to ROOM (default "product:1")
// the event EVENT (default "emitter:hello") with args {"from":"node","n":1} and a
// Buffer [1,2,3]; then exits.
import { createClient } from "redis";
import { Emitter } from "@socket.io/redis-emitter";

const client = createClient({ url: process.env.REDIS_URL });
await client.connect();
const emitter = new Emitter(client);
emitter.to(process.env.ROOM || "product:1").emit(process.env.EVENT || "emitter:hello", { from: "node", n: 1 }, Buffer.from([1, 2, 3]));
await new Promise((r) => setTimeout(r, 100));
await client.quit();
console.log("SENT");
