// What a flow query's filters may name, for the query API and the CLI alike: Kubernetes naming rules (namespaces
// are DNS labels, pods and workloads DNS subdomains) and IP addresses. A value no object could have is refused
// before it costs a query: an empty answer would look like a quiet cluster.
import * as z from "zod";
import { normalizeIp } from "./holders.ts";

export const namespaceName = z
  .string()
  .max(63)
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a Kubernetes namespace name");

export const objectName = z
  .string()
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, "must be a Kubernetes object name");

export const workloadRef = z
  .string()
  .max(317)
  .regex(
    /^(?:[A-Za-z][A-Za-z0-9]{0,62}\/)?[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/,
    "must be [kind/]name, e.g. Deployment/api",
  );

/**
 * The store keys flows by their addresses in this form (adapters/dynamo/keys.ts ipKey), RFC 5952 (lowercase,
 * compressed), an IPv4-mapped one as its IPv4 address (as attribution reads it): normalised so `2001:DB8:0::1` finds
 * `2001:db8::1`, and `10.0.0.1` finds the flows that dual-stack servers logged as `::ffff:10.0.0.1`, and back.
 */
export const ipAddress = z
  .union([z.ipv4(), z.ipv6()], { error: "must be an IPv4 or IPv6 address" })
  .transform(normalizeIp);
