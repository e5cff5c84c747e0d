/** Random is a seeded source of numbers, so that a run with the same seed draws the same schedule and load. */
export interface Random {
  /** next draws in [0, 1). */
  next(): number;
  /** int draws a whole number in [min, max]. */
  int(min: number, max: number): number;
  /** pick draws one element of a non-empty list. */
  pick<T>(items: readonly T[]): T;
  /** shuffled returns a shuffled copy of items. */
  shuffled<T>(items: readonly T[]): T[];
  /** fork derives an independent source, so that one consumer's draws never shift another's. */
  fork(label: string): Random;
}

/** createRandom builds a Random on mulberry32, a small generator that is plenty for schedules and request mixes. */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const random: Random = {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    pick: (items) => {
      if (items.length === 0) throw new RangeError("pick from an empty list");
      return items[Math.floor(next() * items.length)] as (typeof items)[number];
    },
    shuffled: (items) => {
      const copy = [...items];
      for (let i = copy.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [copy[i], copy[j]] = [copy[j] as (typeof copy)[number], copy[i] as (typeof copy)[number]];
      }
      return copy;
    },
    fork: (label) => createRandom(hash(`${seed}:${label}`)),
  };
  return random;
}

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
