/**
 * The `ticker` scenario's messages: a market-data quote as JSON (a ticker's price fields and a book of 10 bid
 * and 10 ask levels, ~1.3 KB of data, ~1.45 KB as a `message` frame). Repetitive the way such feeds are (the same
 * field names on every level, prices a cent apart), so it compresses as real quotes do: this is what
 * permessage-deflate is measured on. `t` (the publisher's clock, ms) comes first so members read the latency
 * without parsing the rest.
 */

/** A small seeded generator (mulberry32): the same keys in the same order in every run. */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VENUES = ['XNAS', 'XNYS', 'ARCX', 'BATS'];

/** The data of quote number `n` of key number `k` (of `keys`), stamped `at` (publisher clock, ms). */
export function quote(k, n, at) {
  const mid = 20 + ((k * 7919) % 48000) / 100 + ((n * 13) % 200) / 100;
  const cents = (x) => x.toFixed(2);
  const level = (side, l) => ({
    px: cents(side === 'bid' ? mid - 0.01 * (l + 1) : mid + 0.01 * (l + 1)),
    qty: 100 * (1 + ((n + l * 7 + k) % 23)),
    orders: 1 + ((n + l) % 9),
    venue: VENUES[(k + l) % 4],
  });
  const bids = [];
  const asks = [];
  for (let l = 0; l < 10; l++) {
    bids.push(level('bid', l));
    asks.push(level('ask', l));
  }
  return {
    t: Number(at.toFixed(3)),
    sym: `K${k}`,
    name: `Key ${k} Holdings Inc. Class A`,
    exchange: VENUES[k % 4],
    currency: 'USD',
    status: 'trading',
    last: cents(mid),
    bid: cents(mid - 0.01),
    ask: cents(mid + 0.01),
    open: cents(mid - 0.5),
    high: cents(mid + 0.75),
    low: cents(mid - 0.8),
    volume: 100000 + ((n * 977) % 900000),
    updated: new Date(Math.floor(at)).toISOString(),
    book: { bids, asks },
  };
}
