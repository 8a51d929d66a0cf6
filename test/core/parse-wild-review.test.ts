// Review of the parser against the forms calico-packet lines really take on their way from an EKS node to
// CloudWatch Logs: the shippers' own record layouts (Container Insights' Fluent Bit, the systemd and kmsg inputs and
// their key options, the CloudWatch agent, the OpenTelemetry collector's CloudWatch Logs exporter, journald tools),
// the syslog formats of Amazon Linux 2 / AL2023 / Bottlerocket, the prefixes Felix writes in its iptables and
// nftables dataplanes, and the kernel fields of the packets Calico logs. Each case names its source; addresses are
// fictional (RFC 1918 192.168/16, RFC 5737, RFC 3849). The review found four forms read wrongly (the exporter's
// `body`, journald's host name under Strip_Underscores or Lowercase, a namespaced `%p` cut inside its namespace).
import { describe, expect, it } from "vitest";
import { record } from "../support/parse-outcome.ts";

/** What nf_log_syslog prints after Felix's `--log-prefix "calico-packet: "`: a pod's SYN to another pod, denied. */
const MESSAGE =
  "calico-packet: IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0 ";

/** The packet fields every wrapped MESSAGE must come out with. */
const PACKET = {
  prefix: "calico-packet",
  inInterface: "eth0",
  outInterface: "eni8d48114818c",
  src: "192.168.22.247",
  dst: "192.168.94.122",
  ipVersion: 4,
  length: 60,
  protocol: "TCP",
  srcPort: 59070,
  dstPort: 8012,
  tcpFlags: ["SYN"],
} as const;

/** Amazon Linux 2's rsyslog line for it (RSYSLOG_TraditionalFileFormat): what /var/log/messages holds. */
const AL2_LINE = `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${MESSAGE}`;
const NODE = "ip-192-168-74-5.eu-west-1.compute.internal";

describe("Fluent Bit records (aws-for-fluent-bit, Container Insights, the CloudWatch Observability add-on)", () => {
  it("host log group: tail of /var/log/messages through the `syslog` regex parser, with the aws filter's fields", () => {
    // https://github.com/aws-samples/amazon-cloudwatch-container-insights/blob/main/k8s-deployment-manifest-templates/deployment-mode/daemonset/container-insights-monitoring/fluent-bit/fluent-bit.yaml
    // (host-log.conf: tail /var/log/messages, Parser syslog = time/host/ident/pid/message with Time_Key time, so the
    // time is taken out of the record; [FILTER] aws adds az and ec2_instance_id.) Same config in
    // https://github.com/aws-observability/helm-charts/blob/main/charts/amazon-cloudwatch-observability/values.yaml
    const line = JSON.stringify({
      host: "ip-192-168-74-5",
      ident: "kernel",
      message: MESSAGE,
      az: "eu-west-1a",
      ec2_instance_id: "i-0123456789abcdef0",
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: "ip-192-168-74-5", time: null });
  });

  it("dataplane log group layout: systemd input renamed by the modify filter to hostname/systemd_unit/message", () => {
    // Same fluent-bit.yaml, dataplane-log.conf: Rename _HOSTNAME hostname, _SYSTEMD_UNIT systemd_unit, MESSAGE
    // message, Remove_regex of everything else. Kernel entries have no unit.
    const line = JSON.stringify({ hostname: NODE, message: MESSAGE, ec2_instance_id: "i-0123456789abcdef0" });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("systemd input on the kernel transport (AL2023 / Bottlerocket, which have no /var/log/messages)", () => {
    // https://github.com/aws-observability/helm-charts/pull/247 (host.dmesg from the systemd input with
    // _TRANSPORT=kernel, for AL2023) and https://github.com/aws-samples/amazon-cloudwatch-container-insights/issues/136
    // (Bottlerocket: all logs go to journald). Kernel entries carry _SOURCE_MONOTONIC_TIMESTAMP (time since boot),
    // never a realtime one: https://man7.org/linux/man-pages/man7/systemd.journal-fields.7.html
    const line = JSON.stringify({
      _TRANSPORT: "kernel",
      PRIORITY: "5",
      SYSLOG_FACILITY: "0",
      SYSLOG_IDENTIFIER: "kernel",
      _BOOT_ID: "0123456789abcdef0123456789abcdef",
      _MACHINE_ID: "fedcba9876543210fedcba9876543210",
      _HOSTNAME: NODE,
      _SOURCE_MONOTONIC_TIMESTAMP: "8123456789",
      MESSAGE,
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("systemd input with Strip_Underscores On: _HOSTNAME arrives as HOSTNAME", () => {
    // https://docs.fluentbit.io/manual/pipeline/inputs/systemd — strip_underscores: "Remove the leading underscore
    // of the journald field (key). For example, the journald field _PID becomes the key PID."
    const line = JSON.stringify({
      TRANSPORT: "kernel",
      PRIORITY: "5",
      SYSLOG_IDENTIFIER: "kernel",
      HOSTNAME: NODE,
      SOURCE_MONOTONIC_TIMESTAMP: "8123456789",
      MESSAGE,
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("systemd input with Lowercase On: _HOSTNAME arrives as _hostname", () => {
    // https://docs.fluentbit.io/manual/pipeline/inputs/systemd — lowercase: "Lowercase the journald field (key)."
    // (https://github.com/fluent/fluent-bit/pull/4908: MESSAGE => message, _PID => _pid).
    const line = JSON.stringify({
      _transport: "kernel",
      priority: "5",
      syslog_identifier: "kernel",
      _hostname: NODE,
      _source_monotonic_timestamp: "8123456789",
      message: MESSAGE,
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("systemd input with both Strip_Underscores and Lowercase: hostname and message", () => {
    // Same page; the combination fluentd's systemd plugin recommends (fields_strip_underscores + fields_lowercase).
    const line = JSON.stringify({ transport: "kernel", hostname: NODE, message: MESSAGE });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("kmsg input: priority/sequence/sec/usec/msg, where sec is seconds since boot, not an epoch", () => {
    // https://docs.fluentbit.io/manual/pipeline/inputs/kernel-logs
    const line = JSON.stringify({ priority: 5, sequence: 1814, sec: 11706, usec: 732233, msg: MESSAGE });
    expect(record(line)).toMatchObject({ ...PACKET, node: null, time: null });
  });

  it("container log of a DaemonSet that greps calico-packet out of the host's syslog (cri parser, kubernetes filter)", () => {
    // The pattern of https://gist.github.com/feiskyer/6e3104d3ca63d7b242ff70e90a133ed1 (tail -f syslog | grep
    // 'calico-packet:'), shipped by the application-log.conf of the Container Insights fluent-bit.yaml above
    // (multiline.parser docker, cri: time/stream/_p/log; kubernetes filter). The pod's own name holds the prefix.
    const line = JSON.stringify({
      time: "2024-04-19T04:52:20.123456789Z",
      stream: "stdout",
      _p: "F",
      log: AL2_LINE,
      kubernetes: {
        pod_name: "calico-packet-logs-x7k2p",
        namespace_name: "default",
        host: NODE,
        labels: { app: "calico-packet-logs" },
      },
    });
    expect(record(line)).toMatchObject({
      ...PACKET,
      node: "ip-192-168-74-5",
      time: "2024-04-19T04:52:20.123Z",
    });
  });
});

describe("journald exports and journald-to-CloudWatch tools", () => {
  it("journalctl -o json, spaced as journalctl writes it, with the realtime timestamp", () => {
    // https://man7.org/linux/man-pages/man1/journalctl.1.html (-o json; __REALTIME_TIMESTAMP in µs).
    const line = `{ "__CURSOR" : "s=0123;i=1f", "__REALTIME_TIMESTAMP" : "1713502339123456", "__MONOTONIC_TIMESTAMP" : "8123456790", "_BOOT_ID" : "0123456789abcdef0123456789abcdef", "_TRANSPORT" : "kernel", "PRIORITY" : "5", "SYSLOG_FACILITY" : "0", "SYSLOG_IDENTIFIER" : "kernel", "_SOURCE_MONOTONIC_TIMESTAMP" : "8123456789", "_HOSTNAME" : "ip-192-168-74-5", "MESSAGE" : ${JSON.stringify(MESSAGE)} }`;
    expect(record(line)).toMatchObject({
      ...PACKET,
      node: "ip-192-168-74-5",
      time: "2024-04-19T04:52:19.123Z",
    });
  });

  it("journald-cloudwatch-logs' JSON events (hostname, transport, message, nested syslog/kernel objects)", () => {
    // https://github.com/pranavraja/journald-cloudwatch-logs (README, "Log records are translated to Cloudwatch
    // JSON events using a structure like the following").
    const line = JSON.stringify({
      instanceId: "i-0123456789abcdef0",
      bootId: "0123456789abcdef0123456789abcdef",
      hostname: "ip-192-168-74-5",
      transport: "kernel",
      priority: "NOTICE",
      message: MESSAGE,
      syslog: { facility: 0, ident: "kernel" },
      kernel: {},
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: "ip-192-168-74-5", time: null });
  });
});

describe("the OpenTelemetry collector's CloudWatch Logs exporter (CloudWatch agent journald, ADOT)", () => {
  // awscloudwatchlogsexporter writes each log record as JSON {"body": …, "severity_number", …, "attributes", "scope",
  // "resource"} unless raw_log is true (default false):
  // https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/exporter/awscloudwatchlogsexporter/exporter.go
  // https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/exporter/awscloudwatchlogsexporter/README.md

  it("the record around an object body gives its host and time when the body has none", () => {
    // Not the exporter's default layout (it writes no time), but a shipper may add them; `record` also holds the
    // in-place reader to JSON.parse's answer.
    const line = JSON.stringify({
      time: "2024-04-19T04:52:19.5Z",
      host: NODE,
      body: { MESSAGE, _TRANSPORT: "kernel" },
      attributes: {},
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: "2024-04-19T04:52:19.500Z" });
    // The body's own host wins over the record's.
    const inner = JSON.stringify({ host: "outer", body: { MESSAGE, _HOSTNAME: NODE } });
    expect(record(inner).node).toBe(NODE);
  });

  it("CloudWatch agent logs_collected.journald: the journald receiver's map body inside the exporter's record", () => {
    // The agent's journald pipeline is journald receiver -> batch -> awscloudwatchlogs exporter with its default
    // config (raw_log unset): https://github.com/aws/amazon-cloudwatch-agent/blob/main/translator/translate/otel/exporter/journald/translator.go
    // The receiver's body is journalctl's JSON entry as a map, less __REALTIME_TIMESTAMP (made the record's time):
    // https://github.com/open-telemetry/opentelemetry-collector-contrib/blob/main/pkg/stanza/operator/input/journald/input.go
    const line = JSON.stringify({
      body: {
        MESSAGE,
        PRIORITY: "5",
        SYSLOG_FACILITY: "0",
        SYSLOG_IDENTIFIER: "kernel",
        _BOOT_ID: "0123456789abcdef0123456789abcdef",
        _HOSTNAME: NODE,
        _SOURCE_MONOTONIC_TIMESTAMP: "8123456789",
        _TRANSPORT: "kernel",
        __CURSOR: "s=0123;i=1f",
        __MONOTONIC_TIMESTAMP: "8123456790",
      },
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });

  it("filelog receiver on /var/log/messages: the syslog line as a string body, file name attribute, resource", () => {
    const line = JSON.stringify({
      body: AL2_LINE,
      attributes: { "log.file.name": "messages" },
      resource: { "host.name": NODE, "cloud.region": "eu-west-1" },
    });
    expect(record(line)).toMatchObject({
      ...PACKET,
      node: "ip-192-168-74-5",
      time: "2024-04-19T04:52:19.000Z",
    });
  });

  it("raw_log: true: the body alone, here journald's map as JSON", () => {
    const line = JSON.stringify({
      MESSAGE,
      PRIORITY: "5",
      SYSLOG_IDENTIFIER: "kernel",
      _HOSTNAME: NODE,
      _TRANSPORT: "kernel",
      __CURSOR: "s=0123;i=1f",
      __MONOTONIC_TIMESTAMP: "8123456790",
    });
    expect(record(line)).toMatchObject({ ...PACKET, node: NODE, time: null });
  });
});

describe("syslog text (CloudWatch agent `files`, Fluent Bit tail without a parser, log_key)", () => {
  it.each([
    [
      // The CloudWatch agent sends each line of a collected file as the event's message:
      // https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch-Agent-Configuration-File-Details.html
      "Amazon Linux 2 /var/log/messages (RSYSLOG_TraditionalFileFormat)",
      AL2_LINE,
      "2024-04-19T04:52:19.000Z",
      "ip-192-168-74-5",
    ],
    [
      // rsyslog's RSYSLOG_FileFormat (high precision) as in Calico's own example of iptables logs:
      // https://docs.tigera.io/calico/latest/network-policy/policy-rules/log-rules
      "rsyslog high-precision timestamp with a negative offset",
      `2024-04-18T21:52:19.023805-07:00 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.023Z",
      "ip-192-168-74-5",
    ],
    [
      // https://www.rsyslog.com/doc/configuration/templates.html (RSYSLOG_ForwardFormat: <PRI>, RFC 3339 time, no
      // version), what rsyslog forwards to a remote collector.
      "rsyslog RSYSLOG_ForwardFormat",
      `<13>2024-04-19T04:52:19.123456+00:00 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.123Z",
      "ip-192-168-74-5",
    ],
    [
      // https://www.rfc-editor.org/rfc/rfc5424 (RSYSLOG_SyslogProtocol23Format; structured data before the MSG).
      "RFC 5424 with structured data",
      `<5>1 2024-04-19T04:52:19.123456+00:00 ip-192-168-74-5 kernel - - [meta sequenceId="42"] ${MESSAGE}`,
      "2024-04-19T04:52:19.123Z",
      "ip-192-168-74-5",
    ],
    [
      // journalctl -k as shown for Bottlerocket in
      // https://github.com/aws-samples/amazon-cloudwatch-container-insights/issues/136 ("… localhost kernel: …").
      "journalctl -k (short) on Bottlerocket",
      `Apr 19 04:52:19 localhost kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.000Z",
      "localhost",
    ],
    [
      // https://man7.org/linux/man-pages/man1/journalctl.1.html (-o short-iso-precise).
      "journalctl -o short-iso-precise",
      `2024-04-19T04:52:19.123456+0000 ip-192-168-74-5 kernel: ${MESSAGE}`,
      "2024-04-19T04:52:19.123Z",
      "ip-192-168-74-5",
    ],
    [
      // Fluent Bit cloudwatch_logs output with log_key message: only the value is sent.
      // https://docs.fluentbit.io/manual/pipeline/outputs/cloudwatch
      "the bare kernel message (log_key)",
      MESSAGE,
      null,
      null,
    ],
  ])("%s", (_name, line, time, node) => {
    expect(record(line)).toMatchObject({ ...PACKET, time, node });
  });
});

describe("Calico's documented example lines (fictional addresses)", () => {
  // https://docs.tigera.io/calico/latest/network-policy/policy-rules/log-rules ("Example of iptable logs")
  const at = "2024-11-19T12:15:03.023805-08:00 c1-control kernel: calico-packet: IN=cali527b0801ecb";

  it("TCP SYN to an external address", () => {
    const line = `${at} OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:1e:0a:36:33:f5:09:08:00 SRC=192.168.193.134 DST=198.51.100.15 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=58406 DF PROTO=TCP SPT=45588 DPT=80 WINDOW=64860 RES=0x00 SYN URGP=0`;
    expect(record(line)).toMatchObject({
      time: "2024-11-19T20:15:03.023Z",
      node: "c1-control",
      src: "192.168.193.134",
      dst: "198.51.100.15",
      protocol: "TCP",
      srcPort: 45588,
      dstPort: 80,
      tcpFlags: ["SYN"],
    });
  });

  it("ICMP echo request", () => {
    const line = `${at} OUT=eth0 MAC=ee:ee:ee:ee:ee:ee:1e:0a:36:33:f5:09:08:00 SRC=192.168.193.134 DST=198.51.100.8 LEN=84 TOS=0x00 PREC=0x00 TTL=63 ID=48210 DF PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1`;
    expect(record(line)).toMatchObject({
      protocol: "ICMP",
      icmpType: 8,
      icmpCode: 0,
      srcPort: null,
      length: 84,
    });
  });

  it("UDP DNS query from pod to pod (the UDP LEN is not the IP LEN)", () => {
    const line = `${at} OUT=calid3446e883f0 MAC=ee:ee:ee:ee:ee:ee:1e:0a:36:33:f5:09:08:00 SRC=192.168.193.134 DST=192.168.193.133 LEN=96 TOS=0x00 PREC=0x00 TTL=63 ID=19241 DF PROTO=UDP SPT=42896 DPT=53 LEN=76`;
    expect(record(line)).toMatchObject({ protocol: "UDP", srcPort: 42896, dstPort: 53, length: 96 });
  });

  it("DropActionOverride LogAndDrop with LogDropActionOverride: calico-drop, IPIP tunl0 (empty MAC), MARK", () => {
    // https://docs.tigera.io/calico-enterprise/latest/reference/component-resources/node/felix/configuration
    // ("If the LogDropActionOverride flag is set, then the DropActionOverride will also appear in the syslog entry").
    const line =
      "May 18 18:42:44 ubuntu kernel: [ 1156.246182] calico-drop LOGandDROP: IN=tunl0 OUT=cali76be879f658 MAC= SRC=192.168.128.30 DST=192.168.157.26 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=56743 DF PROTO=TCP SPT=56248 DPT=80 WINDOW=29200 RES=0x00 SYN URGP=0 MARK=0xa000000";
    expect(record(line, { prefix: "calico-drop" })).toMatchObject({
      time: "2024-05-18T18:42:44.000Z",
      node: "ubuntu",
      prefix: "calico-drop LOGandDROP",
      inInterface: "tunl0",
      mac: null,
      src: "192.168.128.30",
      dstPort: 80,
    });
  });
});

describe("prefixes Felix writes", () => {
  const fields =
    "IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=253 ID=52641 DF PROTO=TCP SPT=59070 DPT=8012 WINDOW=62727 RES=0x00 SYN URGP=0 ";
  const kernel = (prefix: string) => `Apr 19 04:52:19 ip-192-168-74-5 kernel: ${prefix}${fields}`;

  it("nftables dataplane before the quoting fix: `log prefix calico-packet`, so no ': ' before IN=", () => {
    // Felix's nftables LogAction rendered `log prefix %s level info` with the bare prefix until
    // https://github.com/projectcalico/calico/pull/11558 (now `log prefix "%s: " level info`,
    // felix/nftables/nftrender/actions.go).
    expect(record(kernel("calico-packet"))).toMatchObject({ ...PACKET, node: "ip-192-168-74-5" });
  });

  it("nftables (127 characters): %t %k %p of a namespaced Kubernetes NetworkPolicy, in full", () => {
    // felix/rules/policy.go generateLogPrefix (%t tier, %k KindShortName: np gnp snp sgnp sknp knp kcnp, pro for
    // profiles; %p namespace/name for namespaced kinds); Felix appends ": ".
    // https://github.com/projectcalico/calico/pull/11496, https://github.com/projectcalico/calico/pull/11672
    const r = record(kernel("calico-packet default knp tenant-a/allow-frontend: "), {
      prefixFormat: "calico-packet %t %k %p",
    });
    expect(r.policy).toEqual({ tier: "default", kind: "knp", name: "allow-frontend", namespace: "tenant-a" });
  });

  it("'/' as the separator, which LogPrefix's character set allows", () => {
    // https://github.com/projectcalico/calico/pull/11566 (alphanumeric, ':', '%', '/', '_', '-' and space).
    const r = record(kernel("calico-packet/security/np/tenant-a/deny-egress: "), {
      prefixFormat: "calico-packet/%t/%k/%p",
    });
    expect(r.policy).toEqual({ tier: "security", kind: "np", name: "deny-egress", namespace: "tenant-a" });
  });

  it("iptables (29 characters): %p of a namespaced policy is cut inside the namespace, so it names no policy", () => {
    // https://github.com/projectcalico/calico/pull/11672: "iptables only accept 29 characters for log prefix …
    // Extra characters are truncated." "calico-packet default knp " is 26 of them: what is left of %p is the start
    // of the namespace (knp is a namespaced kind), not of the policy's name.
    const r = record(kernel("calico-packet default knp ten"), { prefixFormat: "calico-packet %t %k %p" });
    expect(r.prefix).toBe("calico-packet default knp ten");
    expect(r.policy).toEqual({ tier: "default", kind: "knp", name: null, namespace: "ten" });
  });
});

describe("kernel fields of the packets Calico logs (nf_log_syslog)", () => {
  // https://github.com/torvalds/linux/blob/master/net/netfilter/nf_log_syslog.c
  const head = "Apr 19 04:52:19 ip-192-168-74-5 kernel: calico-packet: ";

  it("IPv6 cluster: eight 4-digit groups, TC/HOPLIMIT/FLOWLBL, TCP", () => {
    const line = `${head}IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:86:dd SRC=2001:0db8:0000:0001:0000:0000:0000:00a1 DST=2001:0db8:0000:0002:0000:0000:0000:0b02 LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=654321 PROTO=TCP SPT=40000 DPT=443 WINDOW=64800 RES=0x00 SYN URGP=0 `;
    expect(record(line)).toMatchObject({
      ipVersion: 6,
      src: "2001:db8:0:1::a1",
      dst: "2001:db8:0:2::b02",
      ttl: 63,
      dstPort: 443,
    });
  });

  it("ICMPv6 neighbour solicitation", () => {
    const line = `${head}IN=eth0 OUT= MAC=33:33:ff:00:00:01:0a:3d:c7:6e:53:91:86:dd SRC=fe80:0000:0000:0000:083d:c7ff:fe6e:5391 DST=ff02:0000:0000:0000:0000:0001:ff00:0001 LEN=72 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=ICMPv6 TYPE=135 CODE=0 `;
    expect(record(line)).toMatchObject({
      protocol: "ICMPv6",
      icmpType: 135,
      src: "fe80::83d:c7ff:fe6e:5391",
    });
  });

  it("ICMP port unreachable quoting the original UDP packet: the outer header is the record", () => {
    const line = `${head}IN=eni8d48114818c OUT=eth0 MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.94.122 DST=192.168.22.247 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=4242 PROTO=ICMP TYPE=3 CODE=3 [SRC=192.168.22.247 DST=192.168.94.122 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=UDP SPT=5353 DPT=9999 LEN=40 ] `;
    expect(record(line)).toMatchObject({
      src: "192.168.94.122",
      dst: "192.168.22.247",
      protocol: "ICMP",
      icmpType: 3,
      icmpCode: 3,
      srcPort: null,
      dstPort: null,
    });
  });

  it("SCTP, which nf_log_syslog prints as a protocol number without ports", () => {
    const line = `${head}IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=68 TOS=0x02 PREC=0x00 TTL=63 ID=0 DF PROTO=132 `;
    expect(record(line)).toMatchObject({ protocol: "SCTP", srcPort: null, dstPort: null });
  });

  it("a later IPv4 fragment (FRAG:) of a UDP datagram: protocol without ports", () => {
    const line = `${head}IN=eth0 OUT=eni8d48114818c MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00 SRC=192.168.22.247 DST=192.168.94.122 LEN=548 TOS=0x00 PREC=0x00 TTL=63 ID=7 FRAG:185 PROTO=UDP `;
    expect(record(line)).toMatchObject({ protocol: "UDP", srcPort: null, dstPort: null, length: 548 });
  });
});
