// The calico-flows API's stage URL as the CLI's --api options take it (kept apart from the API client, whose SDK
// imports every command would otherwise load).
import { InvalidArgumentError } from "commander";

/** A host on this machine: plain HTTP to it never crosses a network (the local emulators and tests use it). */
function isLoopback(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * Why `url` is no stage URL to sign requests for, or undefined when it is one: HTTPS, or plain HTTP to a loopback
 * address only. A signed request sent in clear (an `http://` URL mistyped or pasted) could be captured and
 * replayed against the real API within SigV4's clock window: a `POST /panic` in the operator's name.
 */
export function apiUrlProblem(url: URL): string | undefined {
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    return isLoopback(url.hostname)
      ? undefined
      : `refusing to send a signed request over plain HTTP to ${url.host}: use the API's https:// stage URL`;
  }
  return `expected the API's https:// stage URL, like https://abc123.execute-api.eu-west-1.amazonaws.com/v1; got ${url.protocol} URL`;
}

/**
 * The API's stage URL, checked as an option is read: a mistyped one, or plain HTTP off this machine, is a usage error
 * rather than "Invalid URL" or a signed request sent in clear.
 */
export function apiStageUrl(value: string): string {
  const url = URL.canParse(value) ? new URL(value) : undefined;
  const problem =
    url === undefined
      ? `expected the API's stage URL, like https://abc123.execute-api.eu-west-1.amazonaws.com/v1; got "${value}"`
      : apiUrlProblem(url);
  if (problem !== undefined) throw new InvalidArgumentError(problem);
  return value;
}
