// Review of the policy decoding (`--prefix-format`, decodePolicy) against the prefixes Felix really writes, on the
// Calico versions and dataplanes an EKS operator runs. Felix expands `%t %k %n %p` in its LogPrefix in
// felix/rules/policy.go (generateLogPrefix: `%[tknp]` replaced by tier, KindShortName, name, namespace/name; the
// prefix is used verbatim when it holds no "%" and by Felix versions that predate the expansion), then renders
// `--jump LOG --log-prefix "<prefix>: "` (iptables, 29 characters kept) or `log prefix "<prefix>: " level info`
// (felix/nftables/nftrender/actions.go, 127 kept). The kernel prints it verbatim before `IN=`
// (net/netfilter/nf_log_syslog.c, nf_log_dump_packet_common). Each test fails on the current code.
import { describe, expect, it } from "vitest";
import { filterTerm } from "../../cli/commands/backfill.ts";
import { record } from "../support/parse-outcome.ts";

/** nf_log_syslog's fields for a pod's SYN to another pod, denied (the DESIGN.md line, fictional addresses). */
const FIELDS =
  "IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0 ";
const kernel = (prefix: string) => `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${prefix}${FIELDS}`;

describe("a LogPrefix whose specifiers Felix did not expand", () => {
  it("`calico-packet %t %k %n` logged as written names no policy, not tier %t, kind %k, name %n", () => {
    // Line: `calico-packet %t %k %n: IN=eth0 ...`. A calico-node that predates the LogPrefix specifiers (Felix
    // before generateLogPrefix: the LOG rule's prefix is LogPrefix itself) logs the text as configured; that is
    // every node still on the old version while a FelixConfiguration carrying the format rolls out with a Calico
    // upgrade (calico-node is a DaemonSet updated node by node), or a cluster whose Felix is older than the docs
    // the operator followed. decodePolicy (functions/core/parse.ts) takes the specifiers' own text as values, so
    // every denial on those nodes is stored and alerted as policy `%t: %k %n` (a policy that does not exist, and
    // one flow key for all of them) instead of "no policy decoded". Expected: policy null.
    const r = record(kernel("calico-packet %t %k %n: "), { prefixFormat: "calico-packet %t %k %n" });
    expect(r.prefix).toBe("calico-packet %t %k %n");
    expect(r.policy).toBeNull();
  });
});

describe("separators that names may contain", () => {
  it("`calico-packet-%t-%k-%n` with a hyphenated tier is read with the kind Felix wrote", () => {
    // Line (nftables, 127 characters, whole): `calico-packet-platform-security-gnp-deny-egress: IN=eth0 ...`.
    // "-" is one of the characters Felix's LogPrefix validation allows (with letters, digits, ':', '%', '/', '_'
    // and space), and the natural separator after a prefix spelled `calico-packet`; tier, policy and namespace
    // names are DNS labels/subdomains and routinely hold "-". decodePolicy ends every value at the first
    // following occurrence of the next literal, so the tier is "platform", the kind "security" (not a kind Felix
    // writes: its short names are gnp np knp kcnp, the staged sgnp snp sknp, pro for profiles) and the name
    // "gnp-deny-egress": flows and alerts name a policy that does not exist and the alert e-mail has no
    // `kubectl get` for it. %k comes from that closed set, so it can anchor the split.
    const r = record(kernel("calico-packet-platform-security-gnp-deny-egress: "), {
      prefixFormat: "calico-packet-%t-%k-%n",
    });
    expect(r.policy).toEqual({
      tier: "platform-security",
      kind: "gnp",
      name: "deny-egress",
      namespace: null,
    });
  });
});

describe("a format whose literal head is not the LogPrefix followed by spaces", () => {
  it.each([
    "calico-packet-%t-%k-%n",
    "calico-packet.%t.%k.%n",
    "calico-packet/%t/%k/%p",
    "calico-packet-deny %t %n",
  ])("%s finds the lines of the plain LogPrefix, which name no policy", (prefixFormat) => {
    // Lines: `calico-packet: IN=eth0 ...` (iptables, nftables since the quoting fix) and `calico-packetIN=eth0
    // ...` (nftables before it), from a node whose Felix still has the default LogPrefix (the format not yet
    // rolled out, or backfilled lines from before it was). The subscription filter, which matches logPrefix
    // `calico-packet`, delivers them; the parser looked for the format's literal head without its trailing spaces
    // (`calico-packet-`, `calico-packet-deny`) and skipped them as not calico-packet lines.
    for (const logged of ["calico-packet: ", "calico-packet"]) {
      expect(record(kernel(logged), { prefix: "calico-packet", prefixFormat })).toMatchObject({
        prefix: "calico-packet",
        policy: null,
      });
    }
  });

  it("a format that does not start with --prefix finds its own head's plain lines, and backfill asks for them", () => {
    // `--prefix-format 'cfd-%k-%n'` with the default --prefix: lines are found by the format's literal head, and
    // backfill's filter term is that head (test/backfill/cloudwatch-logs-review.test.ts). `cfd-` left out the
    // `cfd: IN=eth0 ...` lines of a node on LogPrefix `cfd`.
    const options = { prefix: "calico-packet", prefixFormat: "cfd-%k-%n" };
    expect(record(kernel("cfd: "), options)).toMatchObject({ prefix: "cfd", policy: null });
    expect(record(kernel("cfd-gnp-deny-all: "), options).policy).toEqual({
      tier: null,
      kind: "gnp",
      name: "deny-all",
      namespace: null,
    });
    expect(filterTerm(options.prefix, options.prefixFormat)).toBe("cfd");
  });
});
