import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createScanner, LineParser } from "../../functions/core/parse.ts";

const octet = fc.integer({ min: 0, max: 255 });
const address = fc.tuple(octet, octet, octet, octet);
const value = (a: readonly number[]) => a.reduce((v, o) => v * 256 + o, 0);

describe("createScanner", () => {
  it("leaves each IPv4 address's value beside its place in the line, on the fast path and off it (property)", () => {
    const fast = createScanner();
    const loop = new LineParser({}, false);
    loop.encoding = true;
    fc.assert(
      fc.property(address, address, fc.boolean(), (src, dst, macDecode) => {
        // MACDECODE's fields leave the order the fast path walks before SRC=.
        const mac = macDecode
          ? "MACSRC=0a:3d:c7:6e:53:91 MACDST=0a:a3:01:06:e0:c5 MACPROTO=0800"
          : "MAC=0a:a3:01:06:e0:c5:0a:3d:c7:6e:53:91:08:00";
        const line = `Apr 19 04:52:19 n kernel: calico-packet: IN=eth0 OUT=eni1 ${mac} SRC=${src.join(".")} DST=${dst.join(".")} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=1 DPT=2 WINDOW=3 RES=0x00 SYN URGP=0`;
        for (const scanner of [fast, loop]) {
          expect(scanner.scan(line)).toBeNull();
          const f = scanner.fields;
          expect(f.text.slice(f.srcS, f.srcE)).toBe(src.join("."));
          expect(f.srcV4).toBe(value(src));
          expect(f.text.slice(f.dstS, f.dstE)).toBe(dst.join("."));
          expect(f.dstV4).toBe(value(dst));
        }
      }),
      { numRuns: 300 },
    );
  });

  it("leaves no IPv4 value for IPv6 addresses", () => {
    const scanner = createScanner();
    const v6 = "2600:1f18:04a2:5007:155b:0000:0000:a216";
    const line = `calico-packet: IN=eth0 OUT=eni1 SRC=${v6} DST=${v6} LEN=80 TC=0 HOPLIMIT=63 FLOWLBL=1 PROTO=UDP SPT=1 DPT=53 LEN=40`;
    expect(scanner.scan(line)).toBeNull();
    expect(scanner.fields).toMatchObject({ srcS: -1, srcV4: -1, dstS: -1, dstV4: -1, ipVersion: 6 });
  });
});
