/** Regions: the home region of a room (rules, then rendezvous hashing) and the region options' validation. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';
import { regionList } from '../../src/config/schema.js';
import { hashHome, RegionHomes, rendezvousScore } from '../../src/messaging/region-homes.js';

const rooms = Array.from({ length: 10_000 }, (_, i) => `room-${i}`);

describe('RegionHomes', () => {
  it('pins the hash: every node and every version must compute the same home', () => {
    expect(rendezvousScore('east', 'default/lobby')).toBe(rendezvousScore('east', 'default/lobby'));
    // Pinned values: changing the hash re-homes rooms, which is a migration, not a refactoring.
    expect([rendezvousScore('east', 'default/lobby'), rendezvousScore('west', 'default/lobby')]).toEqual([42153016, 2213334468]);
    expect(hashHome(['east', 'west'], 'default', 'lobby')).toBe(hashHome(['west', 'east'], 'default', 'lobby'));
  });

  it('spreads rooms evenly by hashing, whatever the order of the list', () => {
    const homes = new RegionHomes('east', ['east', 'west']);
    const reversed = new RegionHomes('west', ['west', 'east']);
    const inEast = rooms.filter((r) => homes.homeOf('t', r) === 'east').length;
    expect(inEast).toBeGreaterThan(4_700);
    expect(inEast).toBeLessThan(5_300);
    for (const r of rooms.slice(0, 500)) expect(reversed.homeOf('t', r)).toBe(homes.homeOf('t', r));
    expect(
      homes.isLocal(
        't',
        rooms.find((r) => homes.homeOf('t', r) === 'east')!,
      ),
    ).toBe(true);
    expect(
      reversed.isLocal(
        't',
        rooms.find((r) => homes.homeOf('t', r) === 'east')!,
      ),
    ).toBe(false);
  });

  it('moves only the rooms the new region wins when a region is added', () => {
    const two = new RegionHomes('a', ['a', 'b']);
    const three = new RegionHomes('a', ['a', 'b', 'c']);
    let moved = 0;
    for (const r of rooms) {
      const before = two.homeOf('t', r);
      const after = three.homeOf('t', r);
      if (after !== before) {
        expect(after).toBe('c');
        moved++;
      }
    }
    expect(moved).toBeGreaterThan(2_900);
    expect(moved).toBeLessThan(3_800);
  });

  it('lets the first matching rule decide, by tenant and room pattern', () => {
    const homes = new RegionHomes(
      'east',
      ['east', 'west'],
      [
        { tenant: 'acme', rooms: ['eu-*'], region: 'west' },
        { tenant: '*', rooms: ['eu-*', 'global'], region: 'east' },
      ],
    );
    expect(homes.homeOf('acme', 'eu-sales')).toBe('west');
    expect(homes.homeOf('other', 'eu-sales')).toBe('east');
    expect(homes.homeOf('acme', 'global')).toBe('east');
    // Not matched: hashed.
    expect(homes.homeOf('acme', 'us-sales')).toBe(hashHome(['east', 'west'], 'acme', 'us-sales'));
    expect(() => new RegionHomes('north', ['east', 'west'])).toThrow(/not one of the regions/);
  });
});

describe('region options', () => {
  const cluster = { dev: true, nats: 'nats://127.0.0.1:4222', redis: 'redis://127.0.0.1:6379', database: 'postgres://p@h/db' };

  it('are absent by default: no region, nothing to hash over', () => {
    const c = loadConfig(cluster, {});
    expect(c.region).toBeUndefined();
    expect(c.regionHomes).toEqual([]);
    expect(regionList(c)).toEqual([]);
  });

  it('take a region, the list of regions and JSON home rules', () => {
    const c = loadConfig({ ...cluster, region: 'east', regions: 'east, west', regionHomes: '[{"rooms":["eu-*"],"region":"west"}]' }, {});
    expect(regionList(c)).toEqual(['east', 'west']);
    expect(c.regionHomes).toEqual([{ tenant: '*', rooms: ['eu-*'], region: 'west' }]);
    expect(regionList(loadConfig({ ...cluster, region: 'east' }, {}))).toEqual(['east']);
  });

  it('refuse what cannot work', () => {
    expect(() => loadConfig({ dev: true, region: 'east' }, {})).toThrow(/--region needs --nats/);
    expect(() => loadConfig({ ...cluster, backplane: 'redis', region: 'east' }, {})).toThrow(/--region needs --nats/);
    expect(() => loadConfig({ ...cluster, durableLog: 'memory', region: 'east' }, {})).toThrow(/JetStream durable log/);
    expect(() => loadConfig({ ...cluster, region: 'East' }, {})).toThrow(/region: 1–32/);
    expect(() => loadConfig({ ...cluster, region: 'east', regions: 'west,north' }, {})).toThrow(/must include this node's region east/);
    expect(() => loadConfig({ ...cluster, region: 'east', regions: 'east,east' }, {})).toThrow(/given twice/);
    expect(() => loadConfig({ ...cluster, region: 'east', regionHomes: '[{"rooms":["x"],"region":"west"}]' }, {})).toThrow(/region west is not in --regions/);
    expect(() => loadConfig({ ...cluster, regions: 'east,west' }, {})).toThrow(/need --region/);
  });
});
