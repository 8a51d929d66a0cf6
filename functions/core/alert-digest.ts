// The e-mail of a batch of the alerts topic's messages: the mailer publishes one per invocation, so that a flood of
// alerts reaches the e-mail subscribers as a few e-mails rather than one a message (SNS suspends an e-mail
// subscription sent more than 10 a second). Pure.
//
// One message is mailed as an e-mail subscriber of the alerts topic got it: its own subject and text. Several make a
// digest: a subject counting them, an index (a line per message: its subject), then each one's text; panic
// announcements first, then high severity, then the oldest. It is cut to SNS's 262,144 bytes, texts from the end
// first, with a closing note that says how many were left out and the command that lists their alerts. A message
// that tells of something older than LATE_AFTER_MS (a batch retried for long, a dead letter redriven) says so.
import { alertsCommand, fitSubject, MAX_PUBLISH_BYTES, type MessageOptions } from "./alert-message.ts";

/** One message of a batch, as the digest takes it. */
export interface DigestMessage {
  subject: string;
  text: string;
  /** A panic announcement: they lead the digest. */
  panic: boolean;
  high: boolean;
  /** ISO time: the oldest first among equals; the closing note lists what was left out from the oldest of them. */
  at: string;
}

export interface Digest {
  subject: string;
  /** Plain text, well-formed: with the subject, MAX_PUBLISH_BYTES at most. */
  text: string;
  /** Messages whose text is not in it. */
  leftOut: number;
}

export interface DigestOptions extends MessageOptions {
  /** The cluster whose alerts these are: the closing note's command lists them. */
  readonly cluster: string;
  /** The clock (epoch ms) that the messages' times are late by. */
  readonly now: number;
}

/**
 * The age past which a message is marked late: the AlertMailBacklog alarm's, an age the mail queue's messages never
 * reach while the mailer works. Its time is the message's own (what it tells of), not when SQS got it: a redrive
 * from the dead-letter queue makes it a new message there, which a panic announced 9 days earlier would be mailed as.
 */
export const LATE_AFTER_MS = 15 * 60_000;

/** `[late: 9d] ` for a message older than LATE_AFTER_MS (its age in the largest whole unit), else nothing. */
function lateMark(at: string, now: number): string {
  const age = now - Date.parse(at);
  if (!(age > LATE_AFTER_MS)) return "";
  const minutes = Math.floor(age / 60_000);
  const text =
    minutes >= 24 * 60
      ? `${Math.floor(minutes / (24 * 60))}d`
      : minutes >= 60
        ? `${Math.floor(minutes / 60)}h`
        : `${minutes}m`;
  return `[late: ${text}] `;
}

/** A message the mailer could not read (not JSON, or not a kind this version knows): mailed as it came. */
export function unreadableMessage(body: string, at: string, cluster: string): DigestMessage {
  return {
    subject: fitSubject(["Calico: a message calico-flows cannot read (", { name: cluster }, ")"]),
    text:
      `This message on the alerts topic of cluster ${cluster} is not one this version of calico-flows can read ` +
      `(another version's, or another publisher's). As it came:\n\n${body}\n`,
    panic: false,
    // Whatever it says, it is not left out before what is known to matter less.
    high: true,
    at,
  };
}

/** Panic announcements first (isolation is off, or the button failed), then high severity, then the oldest. */
function byUrgency(a: DigestMessage, b: DigestMessage): number {
  if (a.panic !== b.panic) return a.panic ? -1 : 1;
  if (a.high !== b.high) return a.high ? -1 : 1;
  return a.at < b.at ? -1 : a.at > b.at ? 1 : 0;
}

const bytes = (text: string): number => Buffer.byteLength(text);

const CUT_NOTE = "\n\n[… cut short: this text would pass SNS's 256 KB limit.]\n";

/** `text` within `room` bytes: whole, or its longest head that fits with a note saying it was cut. */
function fitted(text: string, room: number): string {
  if (bytes(text) <= room) return text;
  // encodeInto writes whole characters only: `read` is the head that fits, never half a surrogate pair.
  const { read } = new TextEncoder().encodeInto(text, new Uint8Array(Math.max(room - bytes(CUT_NOTE), 0)));
  return `${text.slice(0, read)}${CUT_NOTE}`;
}

/** The e-mail of a batch of messages (at least one). */
export function alertDigest(messages: readonly DigestMessage[], options: DigestOptions): Digest {
  const sorted = messages
    .map((m) => ({ ...m, subject: m.subject.toWellFormed(), text: m.text.toWellFormed() }))
    .sort(byUrgency);
  const first = sorted[0];
  if (first === undefined) throw new Error("a digest needs at least one message");
  const late = (m: DigestMessage) => lateMark(m.at, options.now);
  if (sorted.length === 1) {
    const subject = late(first) === "" ? first.subject : fitSubject([late(first), { name: first.subject }]);
    return { subject, text: fitted(first.text, MAX_PUBLISH_BYTES - bytes(subject)), leftOut: 0 };
  }
  const n = sorted.length;
  const subject = fitSubject([`[${n} messages] ${late(first)}`, { name: first.subject }]);
  const budget = MAX_PUBLISH_BYTES - bytes(subject);
  const header =
    `${n} messages from the calico-flows alerts topic of cluster ${options.cluster}: panic announcements ` +
    "first, then high severity, then the oldest.\n\n";
  const width = String(n).length;
  const section = (m: DigestMessage, i: number) =>
    `\n===== ${i + 1} of ${n} ${late(m)}=====\n${m.subject}\n\n${m.text}`;
  // The oldest time from each position on: the note lists the alerts of the texts left out from there.
  const oldestFrom = sorted.map((m) => m.at);
  for (let i = n - 2; i >= 0; i--) {
    if ((oldestFrom[i + 1] as string) < (oldestFrom[i] as string))
      oldestFrom[i] = oldestFrom[i + 1] as string;
  }
  const note = (shown: number) =>
    shown === n
      ? ""
      : `\n===== ${n - shown} more left out =====\nThe texts of messages ${shown + 1} to ${n} are left out of ` +
        "this e-mail, which would pass SNS's limit of 256 KB. List the alerts among them with:\n" +
        `   ${alertsCommand(options.cluster, oldestFrom[shown] as string, options)}\n`;
  // Room for the longest note, whichever texts it comes to count.
  let used = bytes(header) + Math.max(...sorted.map((_, shown) => bytes(note(shown))));
  // The index takes half the room at most (a line per message of a batch of thousands), the texts the rest.
  const lines: string[] = [];
  for (const [i, m] of sorted.entries()) {
    const line = `  ${String(i + 1).padStart(width)}. ${late(m)}${m.subject}\n`;
    if (used + bytes(line) > budget / 2) break;
    lines.push(line);
    used += bytes(line);
  }
  const sections: string[] = [];
  for (const [i, m] of sorted.entries()) {
    const text = section(m, i);
    if (used + bytes(text) > budget) {
      // The most urgent message is never left out whole: its head, at least.
      if (i === 0) sections.push(fitted(text, budget - used));
      break;
    }
    sections.push(text);
    used += bytes(text);
  }
  return {
    subject,
    text: `${header}${lines.join("")}${sections.join("")}${note(sections.length)}`,
    leftOut: n - sections.length,
  };
}
