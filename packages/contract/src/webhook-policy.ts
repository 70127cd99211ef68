import { isIP } from "node:net";

/**
 * Which webhook targets the worker may reach. By default every address that points inward is refused:
 * loopback, private and shared (CGNAT) networks, link-local, multicast, unspecified, broadcast, reserved
 * ranges, IPv4 addresses embedded in IPv6 (mapped, compatible, NAT64, 6to4) that are any of these, and cloud
 * metadata endpoints. An allowlist (WEBHOOK_ALLOW_HOSTS) opens chosen hostnames and networks.
 *
 * The gateway checks a callbackUrl at subscribe time (an IP literal, or a name known to point inward); the
 * worker checks again at delivery, on the address its connection actually uses (so DNS rebinding does not
 * pass).
 */

/** The rule that refused an address. */
export type AddressRule =
  | "loopback"
  | "private"
  | "link-local"
  | "multicast"
  | "unspecified"
  | "broadcast"
  | "reserved"
  | "metadata";

const RULE_PHRASE: Readonly<Record<AddressRule, string>> = {
  loopback: "a loopback",
  private: "a private",
  "link-local": "a link-local",
  multicast: "a multicast",
  unspecified: "an unspecified",
  broadcast: "a broadcast",
  reserved: "a reserved",
  metadata: "a cloud metadata",
};

/** Why a target was refused. */
export interface AddressRefusal {
  rule: AddressRule;
  /** the refused address or hostname */
  target: string;
  /** whether `target` is a name (refused by name) rather than an address */
  byName: boolean;
}

/** The sentence naming a refusal: `<subject> resolves to a loopback address (127.0.0.1), refused by ...`. */
export function refusalMessage(subject: string, r: AddressRefusal): string {
  const what = r.byName
    ? `names ${RULE_PHRASE[r.rule]} host (${r.target})`
    : `resolves to ${RULE_PHRASE[r.rule]} address (${r.target})`;
  return `${subject} ${what}, refused by the webhook address policy`;
}

type Bytes = number[];

interface Network {
  bytes: Bytes;
  bits: number;
}

/** Parses a textual IPv4 or IPv6 address (no brackets; a zone id is ignored) into 4 or 16 bytes. */
export function parseIp(text: string): Bytes | null {
  const ip = text.replace(/%.*$/, "");
  const kind = isIP(ip);
  if (kind === 4) return ip.split(".").map(Number);
  if (kind !== 6) return null;
  let head = ip;
  let tail: Bytes = [];
  const dotted = /:(\d+\.\d+\.\d+\.\d+)$/.exec(ip);
  if (dotted?.[1]) {
    tail = dotted[1].split(".").map(Number);
    head = ip.slice(0, ip.length - dotted[1].length);
    // "::1.2.3.4" leaves "::", "ffff::1.2.3.4" leaves "ffff::", "a:b:c:d:e:f:1.2.3.4" leaves "a:...:f:"
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const groupsWanted = 8 - tail.length / 2;
  const [left = "", right] = head.split("::");
  const l = left === "" ? [] : left.split(":");
  const r = right === undefined || right === "" ? [] : right.split(":");
  const zeros = right === undefined ? 0 : groupsWanted - l.length - r.length;
  const groups = [...l, ...Array<string>(zeros).fill("0"), ...r].map((g) => Number.parseInt(g, 16));
  if (groups.length !== groupsWanted) return null;
  return [...groups.flatMap((g) => [g >> 8, g & 0xff]), ...tail];
}

function inNetwork(addr: Bytes, net: Network): boolean {
  if (addr.length !== net.bytes.length) return false;
  let bits = net.bits;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((addr[i] as number) & mask) !== ((net.bytes[i] as number) & mask)) return false;
  }
  return true;
}

function net(cidr: string): Network {
  const [ip = "", bits = ""] = cidr.split("/");
  const bytes = parseIp(ip);
  if (!bytes) throw new Error(`bad network ${cidr}`);
  return { bytes, bits: Number(bits) };
}

/** First match wins: metadata before link-local and private, broadcast before reserved. */
const V4_RULES: [Network, AddressRule][] = [
  // AWS, GCP, Azure, OCI and others; ECS task metadata; Alibaba Cloud; OCI's legacy address
  [net("169.254.169.254/32"), "metadata"],
  [net("169.254.170.2/32"), "metadata"],
  [net("100.100.100.200/32"), "metadata"],
  [net("192.0.0.192/32"), "metadata"],
  [net("0.0.0.0/8"), "unspecified"],
  [net("127.0.0.0/8"), "loopback"],
  [net("255.255.255.255/32"), "broadcast"],
  [net("224.0.0.0/4"), "multicast"],
  [net("169.254.0.0/16"), "link-local"],
  [net("10.0.0.0/8"), "private"],
  [net("172.16.0.0/12"), "private"],
  [net("192.168.0.0/16"), "private"],
  // shared address space (carrier-grade NAT)
  [net("100.64.0.0/10"), "private"],
  [net("192.0.0.0/24"), "reserved"],
  [net("198.18.0.0/15"), "reserved"],
  [net("240.0.0.0/4"), "reserved"],
];

const V6_RULES: [Network, AddressRule][] = [
  // AWS's IPv6 instance metadata endpoint (inside fc00::/7)
  [net("fd00:ec2::254/128"), "metadata"],
  [net("::/128"), "unspecified"],
  [net("::1/128"), "loopback"],
  [net("ff00::/8"), "multicast"],
  [net("fe80::/10"), "link-local"],
  // deprecated site-local
  [net("fec0::/10"), "private"],
  [net("fc00::/7"), "private"],
  // local-use NAT64
  [net("64:ff9b:1::/48"), "private"],
  [net("100::/64"), "reserved"],
];

/** IPv6 prefixes that carry an IPv4 address; the embedded address is judged by the IPv4 rules. */
const V4_EMBEDDED: [Network, (b: Bytes) => Bytes][] = [
  [net("::ffff:0:0/96"), (b) => b.slice(12)],
  // IPv4-compatible (deprecated); :: and ::1 are matched before
  [net("::/96"), (b) => b.slice(12)],
  [net("64:ff9b::/96"), (b) => b.slice(12)],
  [net("2002::/16"), (b) => b.slice(2, 6)],
];

/** The rule an address falls under by default, or null for a public address. */
export function classifyAddress(address: string): AddressRule | null {
  const bytes = parseIp(address);
  if (!bytes) return null;
  return classifyBytes(bytes);
}

function classifyBytes(bytes: Bytes): AddressRule | null {
  if (bytes.length === 4) return V4_RULES.find(([n]) => inNetwork(bytes, n))?.[1] ?? null;
  const own = V6_RULES.find(([n]) => inNetwork(bytes, n))?.[1];
  if (own) return own;
  for (const [n, extract] of V4_EMBEDDED) if (inNetwork(bytes, n)) return classifyBytes(extract(bytes));
  return null;
}

/** Names that point inward whatever DNS says: localhost (RFC 6761) and metadata hostnames. */
function classifyName(host: string): AddressRule | null {
  if (host === "localhost" || host.endsWith(".localhost")) return "loopback";
  if (METADATA_NAMES.has(host)) return "metadata";
  return null;
}

const METADATA_NAMES = new Set([
  "metadata.google.internal",
  "metadata.goog",
  "metadata",
  "instance-data",
  "instance-data.ec2.internal",
  "metadata.azure.com",
  "metadata.tencentyun.com",
]);

/** A hostname as compared: lower case, no brackets, no trailing dot. */
function normaliseHost(host: string): string {
  return host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}

const HOSTNAME = /^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

/**
 * The webhook address policy: the default refusals, opened by an allowlist of hostnames (exact, or
 * `*.example.com` for any name under it), IP addresses and CIDR networks.
 */
export class WebhookAddressPolicy {
  private readonly hosts = new Set<string>();
  private readonly suffixes: string[] = [];
  private readonly networks: Network[] = [];

  /** Parses an allowlist such as `localhost,*.svc.cluster.local,10.0.0.0/8,::1`; throws naming a bad item. */
  constructor(allowList = "") {
    for (const raw of allowList.split(",")) {
      const item = normaliseHost(raw.trim());
      if (item === "") continue;
      const slash = item.indexOf("/");
      if (slash >= 0 || isIP(item)) {
        const ip = slash >= 0 ? item.slice(0, slash) : item;
        const bytes = parseIp(ip);
        const max = bytes?.length === 4 ? 32 : 128;
        const bitsText = slash >= 0 ? item.slice(slash + 1) : String(max);
        const bits = Number(bitsText);
        if (!bytes || !/^\d{1,3}$/.test(bitsText) || bits > max) {
          throw new Error(`"${raw.trim()}" is not a hostname, IP address or CIDR network`);
        }
        this.networks.push({ bytes, bits });
      } else if (HOSTNAME.test(item) && !/(^|\.)\d+$/.test(item)) {
        // a numeric last label would be read as an IPv4 address, not a name
        if (item.startsWith("*.")) this.suffixes.push(item.slice(1));
        else this.hosts.add(item);
      } else {
        throw new Error(`"${raw.trim()}" is not a hostname, IP address or CIDR network`);
      }
    }
  }

  /** Whether the allowlist names this host (exactly or by a `*.` suffix). */
  allowsHost(hostname: string): boolean {
    const host = normaliseHost(hostname);
    return this.hosts.has(host) || this.suffixes.some((s) => host.endsWith(s));
  }

  /** The refusal of an IP address (as a connection would use it), or null when it may be reached. */
  checkAddress(address: string): AddressRefusal | null {
    const parsed = parseIp(normaliseHost(address));
    if (!parsed) return null;
    // an IPv4-mapped IPv6 address is the IPv4 address for the allowlist too
    const bytes = parsed.length === 16 && inNetwork(parsed, V4_EMBEDDED[0]?.[0] as Network) ? parsed.slice(12) : parsed;
    if (this.networks.some((n) => inNetwork(bytes, n))) return null;
    const rule = classifyBytes(bytes);
    return rule ? { rule, target: normaliseHost(address), byName: false } : null;
  }

  /**
   * The refusal of a URL's host as far as it can be judged without DNS: an IP literal by its address, a
   * name by the names known to point inward. Any other name passes here and is checked on connect.
   */
  checkUrl(url: string | URL): AddressRefusal | null {
    const host = normaliseHost(typeof url === "string" ? new URL(url).hostname : url.hostname);
    if (this.allowsHost(host)) return null;
    if (isIP(host)) return this.checkAddress(host);
    const rule = classifyName(host);
    return rule ? { rule, target: host, byName: true } : null;
  }
}
