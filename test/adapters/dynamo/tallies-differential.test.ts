// The DynamoDB denial tally against its reference model (test/support/tally-model.ts): random calls over a few
// subjects, windows and members give the same counts, whatever the cap.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoDenialTally } from "../../../functions/adapters/dynamo/tallies.ts";
import type { TallyEntry } from "../../../functions/core/ports.ts";
import { startTestStore, type TestStore } from "../../support/dynalite.ts";
import { TallyModel } from "../../support/tally-model.ts";

let ts: TestStore;
let tally: DynamoDenialTally;
const WINDOW = 60_000;
const T0 = Date.parse("2026-04-19T04:00:00.000Z");

beforeAll(async () => {
  ts = await startTestStore();
  tally = new DynamoDenialTally({ client: ts.client, tableName: ts.tableName });
});
afterAll(async () => {
  await ts?.close();
});

const entryArb = fc.record({
  cluster: fc.constantFrom("a", "b"),
  subject: fc.constantFrom(
    "source\nteam-1/Deployment/x",
    "destination\nkube-system/Deployment/coredns\nUDP\n53",
    "s3",
  ),
  members: fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { minLength: 1, maxLength: 8 }),
  // Four windows, any time inside them.
  at: fc.integer({ min: 0, max: 4 * WINDOW - 1 }),
});

describe("DynamoDenialTally against its model", () => {
  it("answers every call as the model does (property)", async () => {
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(entryArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 6 }),
        async (calls, cap) => {
          run++;
          const model = new TallyModel();
          for (const call of calls) {
            // One call holds each subject once, as the alert rules ask (its entries run concurrently).
            const seen = new Set<string>();
            const entries: TallyEntry[] = [];
            for (const e of call) {
              const id = `${e.cluster}\n${e.subject}`;
              if (seen.has(id)) continue;
              seen.add(id);
              entries.push({
                cluster: `run${run}-${e.cluster}`,
                subject: e.subject,
                members: e.members.map((m) => `member-${m}`),
                atMs: T0 + e.at,
              });
            }
            const options = { windowMs: WINDOW, cap };
            expect(await tally.tally(entries, options)).toEqual(await model.tally(entries, options));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
