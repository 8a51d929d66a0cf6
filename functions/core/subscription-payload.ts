// Decoding of CloudWatch Logs subscription deliveries (`awslogs.data`: base64 of gzip of JSON). Each step
// reports its own failure so that a corrupt payload says exactly what is wrong with it.
import { createHash } from "node:crypto";
import { gunzipSync, gzipSync } from "node:zlib";
import { CloudWatchLogsDecodeSchema } from "@aws-lambda-powertools/parser/schemas/cloudwatch";
import type * as z from "zod";
import { DIGEST_LENGTH, digest } from "./aggregate.ts";
import { type CloudWatchEvent, DeliveredEvents } from "./delivered-events.ts";
import { readDelivery } from "./delivery-reader.ts";

export type SubscriptionPayload = z.infer<typeof CloudWatchLogsDecodeSchema>;

export class CorruptPayloadError extends Error {
  override name = "CorruptPayloadError";
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MESSAGE_TYPES = new Set(["DATA_MESSAGE", "CONTROL_MESSAGE"]);

// The envelope goes through the Powertools schema; the events, thousands per payload, through a plain loop
// that checks the same three fields without zod's per-object cost on the hot path.
const EnvelopeSchema = CloudWatchLogsDecodeSchema.omit({ logEvents: true });

function checkEvents(events: unknown): string | undefined {
  if (!Array.isArray(events)) return "logEvents: expected an array";
  if (events.length === 0) return "logEvents: expected at least one event";
  for (let i = 0; i < events.length; i++) {
    const e = events[i] as { id?: unknown; timestamp?: unknown; message?: unknown } | null;
    if (typeof e !== "object" || e === null) return `logEvents.${i}: expected an object`;
    if (typeof e.id !== "string") return `logEvents.${i}.id: expected a string`;
    if (typeof e.timestamp !== "number" || !Number.isFinite(e.timestamp)) {
      return `logEvents.${i}.timestamp: expected a number`;
    }
    if (typeof e.message !== "string") return `logEvents.${i}.message: expected a string`;
  }
  return undefined;
}

const MIN_CHUNK = 64 * 1024;
/**
 * The most JSON a delivery may decompress to. Lambda takes at most 1 MB of asynchronous event, so a delivery is at
 * most some 770 KB of gzip, which at gzip's limit of 1032:1 could hold 790 MB: beyond what the function's 1 GB can
 * parse, it would die out of memory at every attempt. Real deliveries are a few MB (5,000 events: 1.9 MB).
 */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Output buffer size for gunzip: the size the gzip trailer announces (ISIZE, the last member's length mod
 * 2^32), plus one byte so that zlib sees the end without asking for another buffer. One buffer instead of
 * 16 KiB chunks joined at the end: a third of the time of the default on 1.6 MB payloads. Only a hint: a wrong
 * value (corrupt or multi-member data) costs extra chunks, never a wrong result; bounded by gzip's maximum
 * ratio so that a forged trailer cannot make it allocate much.
 */
function outputChunkSize(compressed: Buffer): number {
  if (compressed.length < 18) return MIN_CHUNK;
  const announced = compressed.readUInt32LE(compressed.length - 4) + 1;
  return Math.max(MIN_CHUNK, Math.min(announced, compressed.length * 1032, MAX_JSON_BYTES));
}

/** base64Bytes' buffer, grown to the largest delivery seen. */
let compressedScratch = Buffer.allocUnsafe(0);

/**
 * The bytes of `data` (base64), as Buffer.from(data, "base64") decodes them, in a buffer reused from one delivery to
 * the next: valid only until the next call. A buffer of its own per delivery (some 100 KB) adds to the memory outside
 * V8's heap that makes it collect its old generation.
 */
function base64Bytes(data: string): Buffer {
  // Three bytes per four characters, at most.
  const most = Math.ceil(data.length / 4) * 3;
  if (compressedScratch.length < most) compressedScratch = Buffer.allocUnsafe(Math.max(most, 64 * 1024));
  return compressedScratch.subarray(0, compressedScratch.write(data, "base64"));
}

/**
 * A decoded delivery: the envelope's fields and its events, read in place (DeliveredEvents) and reported as coming
 * from the log stream when their lines name no node.
 */
export type Delivery = Omit<SubscriptionPayload, "logEvents"> & { events: DeliveredEvents };

/**
 * Decodes `awslogs.data` into its envelope and events: what ingest runs on. Throws CorruptPayloadError, saying
 * what is wrong, for anything that is not a subscription payload.
 */
export function decodeDelivery(data: unknown): Delivery {
  if (typeof data !== "string" || data.length === 0) {
    throw new CorruptPayloadError("awslogs.data is missing or not a string");
  }
  let json: Buffer;
  try {
    const compressed = base64Bytes(data);
    json = gunzipSync(compressed, {
      chunkSize: outputChunkSize(compressed),
      maxOutputLength: MAX_JSON_BYTES,
    });
  } catch (error) {
    if ((error as { code?: unknown }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new CorruptPayloadError(`awslogs.data decompresses to more than ${MAX_JSON_BYTES / 2 ** 20} MiB`);
    }
    // Buffer.from skips what is not base64, so tell the two failures apart only now, off the hot path.
    if (data.length % 4 !== 0 || !BASE64.test(data)) {
      throw new CorruptPayloadError(`awslogs.data is not base64 (${data.length} characters)`);
    }
    throw new CorruptPayloadError(`awslogs.data is not gzip: ${(error as Error).message}`);
  }
  // CloudWatch Logs' own layout is read from the bytes; anything else (or invalid JSON) goes to JSON.parse.
  let fields: unknown;
  let events: DeliveredEvents | undefined;
  let eventsProblem: string | undefined;
  const read = readDelivery(json);
  if (read !== undefined) {
    fields = read.envelope;
    events = read.events;
    if (events.length === 0) eventsProblem = "logEvents: expected at least one event";
  } else {
    let value: unknown;
    try {
      value = JSON.parse(json.toString("utf8"));
    } catch (error) {
      throw new CorruptPayloadError(`awslogs.data does not hold JSON: ${(error as Error).message}`);
    }
    fields = value;
    const logEvents = (value as { logEvents?: unknown } | null)?.logEvents;
    eventsProblem = checkEvents(logEvents);
    if (eventsProblem === undefined) events = DeliveredEvents.fromArray(logEvents as CloudWatchEvent[]);
  }
  const envelope = EnvelopeSchema.safeParse(fields);
  // The schema takes any string; CloudWatch Logs sends these two only, and anything else is no delivery of its.
  const typeProblem =
    envelope.success && !MESSAGE_TYPES.has(envelope.data.messageType)
      ? `messageType: expected DATA_MESSAGE or CONTROL_MESSAGE, got ${JSON.stringify(envelope.data.messageType)}`
      : undefined;
  if (!envelope.success || events === undefined || eventsProblem !== undefined || typeProblem !== undefined) {
    const issues = envelope.success
      ? []
      : envelope.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    if (typeProblem !== undefined) issues.push(typeProblem);
    if (eventsProblem !== undefined) issues.push(eventsProblem);
    throw new CorruptPayloadError(`awslogs.data is not a subscription payload: ${issues.join("; ")}`);
  }
  const { logEvents: _, ...rest } = fields as Record<string, unknown>;
  const delivery = rest as Omit<SubscriptionPayload, "logEvents">;
  // The stream is the node's: the reporter of lines that name none.
  return { ...delivery, events: events.withNode(delivery.logStream) };
}

/** decodeDelivery with the events as objects, as JSON.parse gives them (tools, tests, redrive). */
export function decodeSubscriptionData(data: unknown): SubscriptionPayload {
  const { events, ...envelope } = decodeDelivery(data);
  return { ...envelope, logEvents: events.toArray() } as SubscriptionPayload;
}

/** Encodes a payload the way CloudWatch Logs delivers it (used by tests, replay tooling and redrive). */
export function encodeSubscriptionData(payload: SubscriptionPayload): string {
  return gzipSync(JSON.stringify(payload)).toString("base64");
}

/**
 * Identity of a delivery for idempotent storage: its log group, stream and event ids. A redelivered payload
 * (Lambda retry, at-least-once subscription) has the same identity however it was re-encoded.
 */
export function contributionOf(payload: {
  logGroup: string;
  logStream: string;
  logEvents: readonly { id: string }[] | DeliveredEvents;
}): string {
  const events = payload.logEvents;
  const ids = events instanceof DeliveredEvents ? events : events.map((e) => e.id).join(",");
  return deliveryContribution(payload.logGroup, payload.logStream, ids);
}

/**
 * contributionOf a delivery of `logGroup` and `logStream` whose events' ids are `ids` (the ids joined by commas, or
 * the events themselves: the same digest).
 */
export function deliveryContribution(
  logGroup: string,
  logStream: string,
  ids: string | DeliveredEvents,
): string {
  if (typeof ids === "string") return digest(`${logGroup}\n${logStream}\n${ids}`);
  // digest() of the same text, hashed in parts.
  const hash = createHash("sha256").update(`${logGroup}\n${logStream}\n`, "utf8");
  ids.updateWithIds(hash);
  return hash.digest("base64url").slice(0, DIGEST_LENGTH);
}
