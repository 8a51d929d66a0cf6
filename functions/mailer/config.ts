// The mailer's configuration, read from the environment once per container and validated, so a misconfigured
// deployment fails on its first invocation with the offending variable and value.
//
//   EMAIL_TOPIC_ARN  the topic the e-mail subscriptions are on: one plain publish (a digest) per invocation
//   CLUSTER_NAME     the cluster whose alerts these are: the digests' `calico-flows alerts` command, the metrics
//   API_URL          the stack's API, which the e-mails' `calico-flows` commands name (`--api`), as ingest's did
import * as z from "zod";
import { parseEnv } from "../shared/env.ts";

/** The function's timeout (lib/alerts.ts): its one publish request (20 s at most, handler.ts) and its second's wait. */
export const MAILER_TIMEOUT_SECONDS = 30;

const MailerEnv = z.object({
  EMAIL_TOPIC_ARN: z.string().startsWith("arn:"),
  CLUSTER_NAME: z.string().min(1),
  API_URL: z.url({ protocol: /^https?$/ }).optional(),
});

export type MailerConfig = z.infer<typeof MailerEnv>;

export function loadMailerConfig(env: NodeJS.ProcessEnv): MailerConfig {
  return parseEnv(MailerEnv, env, "mailer");
}
