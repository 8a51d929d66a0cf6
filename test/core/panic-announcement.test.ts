// What the announcement of a panic apply says of its expiry when Scheduler refused it or did not confirm it in
// time: the function and `panic --direct` both announce the event PanicService.apply builds, through
// panicAnnouncement, so the service is run here with a Scheduler that fails and the event it publishes is read.
import { describe, expect, it } from "vitest";
import {
  emailOfJson,
  MAX_SUBJECT_LENGTH,
  type PanicEvent,
  panicAnnouncement,
} from "../../functions/core/alert-message.ts";
import { Deadline } from "../../functions/core/deadline.ts";
import {
  type CalicoPolicy,
  type CalicoPolicyStore,
  DEFAULT_PANIC_SETTINGS,
  type ExpiryScheduler,
  OutOfTime,
} from "../../functions/core/panic-policy.ts";
import { PanicService } from "../../functions/panic/service.ts";

const AT = Date.parse("2026-04-19T05:00:00.000Z");
const EXPIRES = "2026-04-19T05:30:00.000Z";
const FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:calico-flows-panic";

/** A cluster holding no policy and only the default tier; `beforeWrite` runs as the policy is written. */
function cluster(beforeWrite: () => void = () => {}): CalicoPolicyStore {
  let held: CalicoPolicy | null = null;
  return {
    apiGroup: DEFAULT_PANIC_SETTINGS.apiGroup,
    getGlobalPolicy: async () => held,
    createGlobalPolicy: async (policy) => {
      beforeWrite();
      held = { ...policy, metadata: { ...policy.metadata, resourceVersion: "1" } };
      return held;
    },
    replaceGlobalPolicy: async () => {
      throw new Error("not expected");
    },
    deleteGlobalPolicy: async () => false,
    listTiers: async () => [],
    listPolicies: async () => ({ globalPolicies: [], namespacedPolicies: [] }),
  };
}

/** Applies with a 30 minutes TTL and answers the event announced. */
async function announcedApply(
  scheduler: ExpiryScheduler,
  calico: CalicoPolicyStore,
  deadline?: Deadline,
): Promise<PanicEvent> {
  const announced: PanicEvent[] = [];
  const service = new PanicService({
    cluster: "prod-eu",
    settings: DEFAULT_PANIC_SETTINGS,
    calico,
    defaultTtlMinutes: 0,
    sink: { publishPanic: async (event) => void announced.push(event) },
    scheduler,
    clock: () => new Date(AT),
  });
  const answer = await service.apply({
    requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
    via: "api",
    reason: "INC-9 payments down",
    ttlMinutes: 30,
    expiryTarget: FUNCTION_ARN,
    deadline,
  });
  expect(answer).toMatchObject({ result: "applied", expiresAt: EXPIRES });
  expect(announced).toHaveLength(1);
  return announced[0] as PanicEvent;
}

const refusing: ExpiryScheduler = {
  schedule: async () => {
    throw Object.assign(new Error("not authorized to perform: scheduler:CreateSchedule"), {
      name: "AccessDeniedException",
    });
  },
  cancel: async () => false,
};

describe("the announcement of an apply whose expiry may not happen", () => {
  it("says the expiry Scheduler refused is not scheduled, in the e-mail and in the JSON", async () => {
    const event = await announcedApply(refusing, cluster());
    const message = panicAnnouncement(event);
    expect(message.email).not.toContain("removed automatically");
    expect(message.email).toContain(
      `  Expires:  ${EXPIRES} is NOT SCHEDULED: revert it by hand once traffic is fixed\n` +
        `            - the expiry could not be scheduled (not authorized to perform: scheduler:CreateSchedule)`,
    );
    const json = JSON.parse(message.json) as Record<string, unknown>;
    expect(json).toMatchObject({ type: "panic", action: "applied", expiresAt: EXPIRES });
    expect(json.expiryNotScheduled).toEqual([
      expect.stringMatching(/^the expiry could not be scheduled \(.*scheduler:CreateSchedule\)/),
    ]);
  });

  it("says so of an expiry Scheduler did not confirm in time", async () => {
    let now = AT;
    const deadline = Deadline.after(20_000, () => now);
    // The policy write takes the time left: Scheduler, which never answers, is not waited for at all.
    const calico = cluster(() => {
      now += 20_000;
    });
    const silent: ExpiryScheduler = { schedule: () => new Promise(() => {}), cancel: async () => false };
    const message = panicAnnouncement(await announcedApply(silent, calico, deadline));
    expect(message.email).not.toContain("removed automatically");
    expect(message.email).toMatch(
      /^ {2}Expires: {2}\S+ is NOT SCHEDULED: .*\n {12}- the expiry schedule was not confirmed in time .*if it was not written/m,
    );
    expect(JSON.parse(message.json).expiryNotScheduled).toEqual([
      expect.stringMatching(/^the expiry schedule was not confirmed in time /),
    ]);
  });

  it("keeps the promise, and the JSON as it was, when the expiry is scheduled", async () => {
    const accepting: ExpiryScheduler = { schedule: async () => "scheduled", cancel: async () => true };
    const event = await announcedApply(accepting, cluster());
    expect(event).not.toHaveProperty("expiryNotScheduled");
    const message = panicAnnouncement(event);
    expect(message.email).toContain(`  Expires:  ${EXPIRES} (removed automatically)\n`);
    expect(JSON.parse(message.json)).not.toHaveProperty("expiryNotScheduled");
  });
});

describe("the announcement of an apply whose write was not confirmed", () => {
  it("says it may have been carried out, and that its expiry could not be scheduled, not that it was refused", async () => {
    const lost = cluster();
    lost.createGlobalPolicy = async () => {
      throw new OutOfTime("the connection to the Kubernetes API was lost", { sent: true });
    };
    const announced: PanicEvent[] = [];
    const service = new PanicService({
      cluster: "prod-eu",
      settings: DEFAULT_PANIC_SETTINGS,
      calico: lost,
      defaultTtlMinutes: 0,
      sink: { publishPanic: async (event) => void announced.push(event) },
      scheduler: refusing,
      clock: () => new Date(AT),
    });
    await expect(
      service.apply({
        requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
        via: "api",
        reason: "INC-9 payments down",
        ttlMinutes: 30,
        expiryTarget: FUNCTION_ARN,
      }),
    ).rejects.toMatchObject({ sent: true });
    expect(announced).toHaveLength(1);
    const message = panicAnnouncement(announced[0] as PanicEvent);
    const json = JSON.parse(message.json) as Record<string, unknown>;
    // `refused` kept for the subscribers that filter on the action; `outcome` tells them it may have been done.
    // `request` tells an apply that may have opened traffic from a revert that may have closed it.
    expect(json).toMatchObject({ type: "panic", action: "refused", request: "apply", outcome: "unknown" });
    expect(message.attributes.action?.StringValue).toBe("refused");
    expect(message.attributes.request?.StringValue).toBe("apply");
    expect(message.subject).toBe(
      "Calico panic apply unconfirmed on prod-eu (may be carried out): run calico-flows panic status",
    );
    expect(message.subject.length).toBeLessThanOrEqual(MAX_SUBJECT_LENGTH);
    expect(message.email).not.toMatch(/refused/);
    expect(message.email).toMatch(
      /^The request to apply the Calico panic policy allow-all was not confirmed on cluster prod-eu: it may have been carried out/,
    );
    expect(message.email).toMatch(
      /^ {2}Outcome: {2}unknown: .*the write was sent.*If it was carried out: the expiry could not be scheduled/m,
    );
    // The mailer writes the e-mail from the JSON alone: the field must be read, not dropped.
    expect(emailOfJson(message.json)).toMatchObject({ subject: message.subject, text: message.email });
  });
});

describe("the announcement of a refused or unconfirmed request", () => {
  const base: PanicEvent = {
    action: "refused",
    cluster: "prod-eu",
    policyName: "allow-all",
    requester: "arn:aws:sts::123456789012:assumed-role/Oncall/alice",
    reason: "fixed",
    at: "2026-04-19T05:10:00.000Z",
    detail: "the Kubernetes API answered 503",
  };

  it("names the request refused, in the subject, the text, the JSON and an attribute", () => {
    for (const request of ["apply", "revert", "expire"] as const) {
      const message = panicAnnouncement({ ...base, request });
      const verb = { apply: "apply", revert: "revert", expire: "expiry" }[request];
      expect(message.subject).toBe(`Calico panic ${verb} refused on prod-eu (alice)`);
      expect(message.attributes.request?.StringValue).toBe(request);
      expect(JSON.parse(message.json)).toMatchObject({ action: "refused", request });
      expect(emailOfJson(message.json)).toMatchObject({ subject: message.subject, text: message.email });
    }
  });

  it("says which request is unconfirmed: a revert that may have closed traffic again", () => {
    const message = panicAnnouncement({ ...base, request: "revert", outcome: "unknown" });
    expect(message.subject).toBe(
      "Calico panic revert unconfirmed on prod-eu (may be carried out): run calico-flows panic status",
    );
    expect(message.email).toMatch(
      /^The request to revert the Calico panic policy allow-all was not confirmed/,
    );
  });

  it("reads a body published before requests were named as it was written then", () => {
    const message = panicAnnouncement({ ...base, outcome: "unknown" });
    expect(message.subject).toBe(
      "Calico panic request unconfirmed on prod-eu (may be carried out): run calico-flows panic status",
    );
    expect(message.attributes.request).toBeUndefined();
    expect(message.email).toMatch(
      /^The Calico panic policy allow-all request was not confirmed on cluster prod-eu/,
    );
    expect(panicAnnouncement(base).subject).toBe("Calico panic request refused on prod-eu (alice)");
  });
});
