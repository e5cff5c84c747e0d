import type { NetworkInterfaceInfo } from "node:os";
import { expect } from "chai";
import { refusalMessage } from "../../test/support/config-errors.js";
import { advertisedAddress, formatHostPort, parseHostPort } from "./host-port.js";

const LOOPBACK = { address: "127.0.0.1", family: "IPv4", internal: true } as NetworkInterfaceInfo;
const LAN = { address: "192.168.1.20", family: "IPv4", internal: false } as NetworkInterfaceInfo;
const LAN6 = { address: "fe80::1", family: "IPv6", internal: false } as NetworkInterfaceInfo;

describe("host and port", () => {
  it("parses HOST:PORT, IPv6 hosts in brackets, and writes it back as it was", () => {
    for (const text of ["127.0.0.1:7700", "gateway.internal:443", "[::1]:8080", "0.0.0.0:0"]) {
      expect(formatHostPort(parseHostPort("--listen", text))).to.equal(text);
    }
    expect(parseHostPort("--listen", "[::]:0")).to.deep.equal({ host: "[::]", port: 0 });
  });

  it("refuses anything else, naming the setting and the port range, and port 0 where an address is dialled", () => {
    expect(refusalMessage(() => parseHostPort("--listen", "localhost"))).to.equal(
      "--listen expects HOST:PORT with a port from 0 to 65535, got 'localhost'",
    );
    expect(refusalMessage(() => parseHostPort("--listen", "h:65536"))).to.equal(
      "--listen expects HOST:PORT with a port from 0 to 65535, got 'h:65536'",
    );
    expect(refusalMessage(() => parseHostPort("--advertise", "::1:80"))).to.match(/^--advertise expects HOST:PORT/);
    expect(refusalMessage(() => parseHostPort("--advertise", "h:0", 1))).to.equal("--advertise expects a port from 1 to 65535, got 'h:0'");
  });

  describe("advertisedAddress", () => {
    const interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = { lo: [LOOPBACK], eth0: [LAN6, LAN] };

    it("is the bound address when nothing is advertised", () => {
      expect(advertisedAddress({ host: "127.0.0.1", port: 4321 }, undefined, interfaces)).to.equal("127.0.0.1:4321");
    });

    it("stands the first external IPv4 address in for a wildcard host, loopback on a machine without one", () => {
      expect(advertisedAddress({ host: "0.0.0.0", port: 7701 }, undefined, interfaces)).to.equal("192.168.1.20:7701");
      expect(advertisedAddress({ host: "[::]", port: 7701 }, undefined, interfaces)).to.equal("192.168.1.20:7701");
      expect(advertisedAddress({ host: "::", port: 1 }, undefined, { lo: [LOOPBACK], eth0: [LAN6] })).to.equal("127.0.0.1:1");
    });

    it("is the advertised address when one is given, its port 0 standing for the port bound", () => {
      expect(advertisedAddress({ host: "0.0.0.0", port: 5000 }, { host: "gateway.internal", port: 0 }, interfaces)).to.equal(
        "gateway.internal:5000",
      );
      expect(advertisedAddress({ host: "0.0.0.0", port: 5000 }, { host: "10.1.2.3", port: 7443 }, interfaces)).to.equal("10.1.2.3:7443");
      expect(advertisedAddress({ host: "127.0.0.1", port: 5000 }, { host: "0.0.0.0", port: 0 }, interfaces)).to.equal("192.168.1.20:5000");
    });
  });
});
