// Decoding of CloudWatch Logs subscription deliveries (`awslogs.data`: base64 of gzip of JSON). Each step
// reports its own failure so that a corrupt payload says exactly what is wrong with it.
import { gunzipSync, gzipSync } from "node:zlib";
import { CloudWatchLogsDecodeSchema } from "@aws-lambda-powertools/parser/schemas/cloudwatch";
import type { z } from "zod";
import { digest } from "./aggregate.ts";
import { readDelivery } from "./delivery-reader.ts";

export type SubscriptionPayload = z.infer<typeof CloudWatchLogsDecodeSchema>;

export class CorruptPayloadError extends Error {
  override name = "CorruptPayloadError";
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

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
const MAX_CHUNK = 64 * 1024 * 1024;

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
  return Math.max(MIN_CHUNK, Math.min(announced, compressed.length * 1032, MAX_CHUNK));
}

export function decodeSubscriptionData(data: unknown): SubscriptionPayload {
  if (typeof data !== "string" || data.length === 0) {
    throw new CorruptPayloadError("awslogs.data is missing or not a string");
  }
  let json: Buffer;
  try {
    const compressed = Buffer.from(data, "base64");
    json = gunzipSync(compressed, { chunkSize: outputChunkSize(compressed) });
  } catch (error) {
    // Buffer.from skips what is not base64, so tell the two failures apart only now, off the hot path.
    if (data.length % 4 !== 0 || !BASE64.test(data)) {
      throw new CorruptPayloadError(`awslogs.data is not base64 (${data.length} characters)`);
    }
    throw new CorruptPayloadError(`awslogs.data is not gzip: ${(error as Error).message}`);
  }
  // CloudWatch Logs' own layout is read from the bytes; anything else (or invalid JSON) goes to JSON.parse.
  let value: unknown = readDelivery(json);
  if (value === undefined) {
    try {
      value = JSON.parse(json.toString("utf8"));
    } catch (error) {
      throw new CorruptPayloadError(`awslogs.data does not hold JSON: ${(error as Error).message}`);
    }
  }
  const envelope = EnvelopeSchema.safeParse(value);
  const eventsProblem = checkEvents((value as { logEvents?: unknown } | null)?.logEvents);
  if (!envelope.success || eventsProblem !== undefined) {
    const issues = envelope.success
      ? []
      : envelope.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    if (eventsProblem !== undefined) issues.push(eventsProblem);
    throw new CorruptPayloadError(`awslogs.data is not a subscription payload: ${issues.join("; ")}`);
  }
  return value as SubscriptionPayload;
}

/** Encodes a payload the way CloudWatch Logs delivers it (used by tests, replay tooling and redrive). */
export function encodeSubscriptionData(payload: SubscriptionPayload): string {
  return gzipSync(JSON.stringify(payload)).toString("base64");
}

/**
 * Identity of a delivery for idempotent storage: its log group, stream and event ids. A redelivered payload
 * (Lambda retry, at-least-once subscription) has the same identity however it was re-encoded.
 */
export function contributionOf(
  payload: Pick<SubscriptionPayload, "logGroup" | "logStream" | "logEvents">,
): string {
  const ids = payload.logEvents.map((e) => e.id).join(",");
  return digest(`${payload.logGroup}\n${payload.logStream}\n${ids}`);
}
