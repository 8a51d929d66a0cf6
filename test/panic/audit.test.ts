import { createHash } from "node:crypto";
import { GetItemCommand, ScanCommand } from "@aws-sdk/client-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoPanicAudit } from "../../functions/adapters/dynamo/panic-audit.ts";
import type { PanicAuditEntry } from "../../functions/core/panic-policy.ts";
import { startTestStore, type TestStore } from "../support/dynalite.ts";

let store: TestStore;
let audit: DynamoPanicAudit;

beforeAll(async () => {
  store = await startTestStore();
  audit = new DynamoPanicAudit({ client: store.clientFor(), tableName: store.tableName });
});
afterAll(async () => store?.close());

function entry(cluster: string, at: string, overrides: Partial<PanicAuditEntry> = {}): PanicAuditEntry {
  return {
    cluster,
    at,
    action: "apply",
    outcome: "success",
    result: "applied",
    requester: "arn:aws:iam::123456789012:user/alice",
    reason: `at ${at}`,
    via: "api",
    policyName: "allow-all",
    expiresAt: "2025-01-01T01:00:00.000Z",
    conflicts: [
      {
        kind: "GlobalNetworkPolicy",
        name: "deny-db",
        namespace: null,
        tier: "default",
        order: 50,
        reasons: ["Deny"],
      },
    ],
    message: "applied",
    ...overrides,
  };
}

describe("DynamoPanicAudit", () => {
  it("keeps every action, two in the same millisecond included, and reads the latest first", async () => {
    await audit.record(entry("a", "2025-01-01T00:00:00.000Z"));
    await audit.record(
      entry("a", "2025-01-01T00:05:00.000Z", { action: "revert", result: "reverted", expiresAt: null }),
    );
    await audit.record(entry("a", "2025-01-01T00:05:00.000Z", { reason: "same millisecond" }));
    await audit.record(entry("b", "2025-01-01T00:10:00.000Z"));
    const recent = await audit.recent("a", 10);
    expect(recent).toHaveLength(3);
    expect(recent.map((e) => e.at)).toEqual([
      "2025-01-01T00:05:00.000Z",
      "2025-01-01T00:05:00.000Z",
      "2025-01-01T00:00:00.000Z",
    ]);
    expect(recent.at(-1)).toEqual({ ...entry("a", "2025-01-01T00:00:00.000Z"), conflictCount: 1 });
    expect(recent.find((e) => e.action === "revert")?.expiresAt).toBeNull();
    expect((await audit.recent("a", 1)).map((e) => e.at)).toEqual(["2025-01-01T00:05:00.000Z"]);
    expect(await audit.recent("a", 0)).toEqual([]);
  });

  it("stores items under PANIC#<cluster> without the table's TTL attribute", async () => {
    await audit.record(entry("ttl-check", "2025-02-01T00:00:00.000Z"));
    const scan = await store.clientFor().send(new ScanCommand({ TableName: store.tableName }));
    const item = scan.Items?.find((i) => i.pk?.S === "PANIC#ttl-check");
    expect(item?.sk?.S).toMatch(/^2025-02-01T00:00:00\.000Z#[0-9a-f]{12}$/);
    expect(item).not.toHaveProperty("expiresAt");
    expect(item?.policyExpiresAt?.S).toBe("2025-01-01T01:00:00.000Z");
    const key = { pk: { S: "PANIC#ttl-check" }, sk: { S: item?.sk?.S ?? "" } };
    const got = await store.clientFor().send(new GetItemCommand({ TableName: store.tableName, Key: key }));
    expect(got.Item?.type?.S).toBe("panic-audit");
  });

  it("keeps within DynamoDB's item size a record of thousands of conflicts and long texts", async () => {
    // A denying policy in each of 2,000 customer namespaces, names as long as Kubernetes allows.
    const conflicts = Array.from({ length: 2_000 }, (_, i) => ({
      kind: "NetworkPolicy" as const,
      name: `platform.${String(i).padStart(5, "0")}-${"n".repeat(236)}`,
      namespace: `org-${String(i).padStart(5, "0")}-${"s".repeat(53)}`,
      tier: `platform-${"t".repeat(244)}`,
      order: 10,
      reasons: [
        `selected traffic that no rule allows or passes (Ingress, Egress) is dropped at the end of tier "platform-${"t".repeat(244)}" (order 100), whose defaultAction is Deny`,
      ],
    }));
    const huge = entry("large", "2025-03-01T00:00:00.000Z", {
      conflicts,
      reason: "é".repeat(50_000),
      requester: "r".repeat(50_000),
      message: `applied. WARNING: ${"€".repeat(400_000)}`,
      // The largest copy of a taken-over policy kept in full: 64 KB.
      replacedPolicy: "€".repeat(21_845),
    });
    await audit.record(huge);
    const [read] = await audit.recent("large", 1);
    expect(read?.replacedPolicy).toBe(huge.replacedPolicy);
    expect(read?.conflictCount).toBe(2_000);
    expect(read?.conflicts).toEqual(conflicts.slice(0, 50));
    expect(read?.message.startsWith("applied. WARNING: €€€")).toBe(true);
    expect(read?.message.endsWith("… (clipped)")).toBe(true);
    expect(read?.message.length).toBe(8_000);
    // A character outside the BMP is not cut in half.
    await audit.record(entry("large", "2025-03-01T00:00:01.000Z", { reason: "😀".repeat(2_000) }));
    const [emoji] = await audit.recent("large", 1);
    expect(emoji?.reason).toBe(`${"😀".repeat(994)}… (clipped)`);
    expect(read?.reason.length).toBe(2_000);
    expect(read?.requester.length).toBe(2_000);
  });

  it("keeps the copy of a taken-over policy, or its digest alone when it is too large to keep in full", async () => {
    const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
    const small = JSON.stringify({ metadata: { name: "allow-all" }, spec: { order: 100 } });
    // Kubernetes allows 256 KiB of annotations, all of them the copy.
    const large = JSON.stringify({
      metadata: { name: "allow-all" },
      spec: { notes: "x".repeat(256 * 1024) },
    });
    await audit.record(entry("copies", "2025-04-01T00:00:00.000Z", { replacedPolicy: small }));
    await audit.record(entry("copies", "2025-04-01T00:00:01.000Z", { replacedPolicy: large }));
    await audit.record(entry("copies", "2025-04-01T00:00:02.000Z"));
    const [none, digestOnly, kept] = await audit.recent("copies", 3);
    expect(kept).toMatchObject({ replacedPolicy: small, replacedPolicySha256: sha256(small) });
    expect(digestOnly?.replacedPolicySha256).toBe(sha256(large));
    expect(digestOnly).not.toHaveProperty("replacedPolicy");
    expect(none).not.toHaveProperty("replacedPolicySha256");
  });

  it("reads as many records as asked when they fill more than one Query page (1 MB)", async () => {
    // Take-overs keep copies up to 64 KB, so 20 of them are more than a page: DynamoDB stops each page at 1 MB.
    const copy = JSON.stringify({ metadata: { name: "allow-all" }, spec: { notes: "x".repeat(60_000) } });
    const times = Array.from({ length: 20 }, (_, i) => `2025-05-01T00:00:${String(i).padStart(2, "0")}.000Z`);
    for (const at of times) await audit.record(entry("pages", at, { replacedPolicy: copy }));
    const recent = await audit.recent("pages", 20);
    expect(recent.map((e) => e.at)).toEqual([...times].reverse());
    expect((await audit.recent("pages", 18)).map((e) => e.at)).toEqual([...times].reverse().slice(0, 18));
  });
});
