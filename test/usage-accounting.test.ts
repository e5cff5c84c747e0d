import { expect } from "chai";
import OpenAI, { toFile } from "openai";
import { testWav, wavDurationSeconds } from "../services/sim/simulator.js";
import { type Mesh, startMesh } from "./support/mesh-fixture.js";
import { waitFor } from "./support/wait-for.js";

// Usage accounting end to end: three users call two users' providers a thousand times over every kind of call
// (the official openai SDK -> gateway -> agent -> simulator), and what /api/usage reports, to each caller and to each
// provider's owner, is exactly what the clients were given: the usage in their answers, the images, the audio.

const USERS = ["alice", "bob", "carol"] as const;
type UserName = (typeof USERS)[number];
/** OWNERS have a provider each, shared with everyone; carol has none. */
const OWNERS = ["alice", "bob"] as const;
const KINDS = ["chat", "chat_stream", "completion", "transcription", "speech", "image"] as const;
type Kind = (typeof KINDS)[number];
const CALLS = 1_000;
const CONCURRENCY = 16;

/** modelOf is the model of an owner's provider that serves a kind of call. */
function modelOf(owner: string, kind: Kind): string {
  switch (kind) {
    case "chat":
    case "chat_stream":
    case "completion":
      return `${owner}-llama`;
    case "transcription":
      return `${owner}-whisper`;
    case "speech":
      return `${owner}-voice`;
    case "image":
      return `${owner}-painter`;
  }
}

/** Got is what a client was given by one call, in the units /api/usage sums. */
interface Got {
  readonly kind: Kind;
  readonly user: UserName;
  readonly model: string;
  readonly owner: string;
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly audioSeconds: number;
  readonly images: number;
}

/** Sums are the columns of a /api/usage row that clients can check. */
interface Sums {
  requests: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  audio_seconds: number;
  images: number;
}

const zero = (): Sums => ({ requests: 0, errors: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, audio_seconds: 0, images: 0 });

function add(sums: Sums, got: Got): void {
  sums.requests++;
  sums.prompt_tokens += got.promptTokens;
  sums.completion_tokens += got.completionTokens;
  sums.total_tokens += got.promptTokens + got.completionTokens;
  sums.audio_seconds += got.audioSeconds;
  sums.images += got.images;
}

/** UsageRow is a /api/usage row: its group's dimensions, its sums and its averages. */
type UsageRow = Sums & Record<string, string | number> & { ttfb_ms_avg: number; duration_ms_avg: number };

/** comparable rounds audio seconds, which the store sums as doubles, and drops the averages no client can know. */
function comparable(row: Record<string, string | number>): Record<string, string | number> {
  const { ttfb_ms_avg: _ttfb, duration_ms_avg: _duration, ...rest } = row;
  return { ...rest, audio_seconds: Math.round(Number(rest.audio_seconds) * 1e6) / 1e6 };
}

describe("usage accounting: /api/usage sums what the clients were given", function () {
  this.timeout(180_000);
  let mesh: Mesh;
  const keys = {} as Record<UserName, string>;
  const clients = {} as Record<UserName, OpenAI>;
  const got: Got[] = [];
  let startedAt: number;

  before(async () => {
    mesh = await startMesh();
    for (const user of USERS) {
      keys[user] = await mesh.registry.keyFor(user);
      clients[user] = new OpenAI({ baseURL: `${mesh.gateway.baseUrl}/v1`, apiKey: keys[user], maxRetries: 0 });
    }
    for (const owner of OWNERS) {
      await mesh.addAgent({
        user: owner,
        apiKey: keys[owner],
        sim: {
          models: [
            { id: modelOf(owner, "chat"), kind: "llm" },
            { id: modelOf(owner, "transcription"), kind: "stt" },
            { id: modelOf(owner, "speech"), kind: "tts" },
            { id: modelOf(owner, "image"), kind: "image" },
          ],
          timeToFirstTokenMs: 1,
          tokensPerSecond: 2_000,
          speechChunkIntervalMs: 1,
        },
        settings: { share: { visibility: "public", allowedUsers: [] } },
      });
    }
    await waitFor("carol to see both providers' models", async () => (await clients.carol.models.list()).data.length === 8, 10_000);
    startedAt = Date.now();
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < CALLS; i = next++) got.push(await call(i));
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  });

  after(() => mesh.stop());

  /** call makes the i-th call: every user calls every kind of every provider, in turn. */
  async function call(i: number): Promise<Got> {
    const user = USERS[i % USERS.length] as UserName;
    const owner = OWNERS[Math.floor(i / USERS.length) % OWNERS.length] as string;
    const kind = KINDS[Math.floor(i / (USERS.length * OWNERS.length)) % KINDS.length] as Kind;
    const model = modelOf(owner, kind);
    const client = clients[user];
    const base = { kind, user, model, owner, promptTokens: 0, completionTokens: 0, audioSeconds: 0, images: 0 };
    const prompt = `call ${i}: ${"tell me more ".repeat(i % 7)}`;
    switch (kind) {
      case "chat": {
        const answer = await client.chat.completions.create({
          model,
          messages: [{ role: "user", content: prompt }],
          max_tokens: 1 + (i % 9),
        });
        return { ...base, promptTokens: answer.usage?.prompt_tokens ?? 0, completionTokens: answer.usage?.completion_tokens ?? 0 };
      }
      case "chat_stream": {
        const stream = await client.chat.completions.create({
          model,
          messages: [{ role: "user", content: prompt }],
          max_tokens: 1 + (i % 9),
          stream: true,
          stream_options: { include_usage: true },
        });
        let usage: OpenAI.CompletionUsage | undefined;
        for await (const chunk of stream) usage = chunk.usage ?? usage;
        return { ...base, promptTokens: usage?.prompt_tokens ?? 0, completionTokens: usage?.completion_tokens ?? 0 };
      }
      case "completion": {
        const answer = await client.completions.create({ model, prompt, max_tokens: 1 + (i % 5) });
        return { ...base, promptTokens: answer.usage?.prompt_tokens ?? 0, completionTokens: answer.usage?.completion_tokens ?? 0 };
      }
      case "transcription": {
        const file = await toFile(testWav(0.5 + (i % 4)), `call-${i}.wav`);
        const answer = await client.audio.transcriptions.create({ model, file });
        const usage = answer.usage;
        if (usage?.type === "tokens") return { ...base, promptTokens: usage.input_tokens, completionTokens: usage.output_tokens };
        return { ...base, audioSeconds: usage?.type === "duration" ? usage.seconds : 0 };
      }
      case "speech": {
        const answer = await client.audio.speech.create({ model, voice: "alloy", input: prompt, response_format: "wav" });
        const bytes = new Uint8Array(await answer.arrayBuffer());
        const seconds = wavDurationSeconds(bytes, bytes.length);
        if (seconds === undefined) throw new Error(`call ${i}: the speech is not a WAV file`);
        return { ...base, audioSeconds: seconds };
      }
      case "image": {
        const answer = await client.images.generate({ model, prompt, n: 1 + (i % 2), size: "256x256" });
        return {
          ...base,
          promptTokens: answer.usage?.input_tokens ?? 0,
          completionTokens: answer.usage?.output_tokens ?? 0,
          images: answer.data?.length ?? 0,
        };
      }
    }
  }

  /** usage asks GET /api/usage as a user (their own key) and returns the rows. */
  async function usage(user: UserName, query: string): Promise<UsageRow[]> {
    const range = `from=${encodeURIComponent(new Date(startedAt - 60_000).toISOString())}&to=${Math.ceil(Date.now() / 1000) + 60}`;
    const response = await fetch(`${mesh.gateway.baseUrl}/api/usage?${range}&${query}`, {
      headers: { authorization: `Bearer ${keys[user]}` },
    });
    const body = (await response.json()) as { data: UsageRow[] };
    expect(response.status, JSON.stringify(body)).to.equal(200);
    return body.data;
  }

  /** expectedRows sums the calls that pass the filter by the named dimensions, in the order the API sorts groups. */
  function expectedRows(filter: (g: Got) => boolean, dimensions: Partial<Record<string, (g: Got) => string>>) {
    const names = Object.keys(dimensions);
    const groups = new Map<string, { group: Record<string, string>; sums: Sums }>();
    for (const g of got.filter(filter)) {
      const group = Object.fromEntries(names.map((name) => [name, (dimensions[name] as (g: Got) => string)(g)]));
      const key = JSON.stringify(group);
      let entry = groups.get(key);
      if (!entry) {
        entry = { group, sums: zero() };
        groups.set(key, entry);
      }
      add(entry.sums, g);
    }
    return [...groups.values()]
      .sort((a, b) => {
        // Byte order, as the store sorts groups.
        for (const name of names) {
          const [x, y] = [String(a.group[name]), String(b.group[name])];
          if (x !== y) return x < y ? -1 : 1;
        }
        return 0;
      })
      .map(({ group, sums }) => comparable({ ...group, ...sums }));
  }

  it("made every call, and the gateway recorded each once it flushed", async () => {
    expect(got).to.have.length(CALLS);
    // Every kind of call reported what it is accounted by: tokens, audio or images.
    const accounted = (g: Got) => g.promptTokens + g.completionTokens + g.audioSeconds + g.images > 0;
    expect(
      KINDS.filter((kind) => !got.some((g) => g.kind === kind && accounted(g))),
      "kinds with nothing to account",
    ).to.deep.equal([]);
    await waitFor(
      "every call in /api/usage",
      async () => {
        let requests = 0;
        for (const user of USERS) requests += (await usage(user, "scope=mine"))[0]?.requests ?? 0;
        return requests === CALLS;
      },
      15_000,
      100,
    );
  });

  it("tells each caller, by their own key, what they used of each model", async () => {
    for (const user of USERS) {
      const rows = await usage(user, "scope=mine&group_by=model");
      expect(rows.map(comparable), user).to.deep.equal(expectedRows((g) => g.user === user, { model: (g) => g.model }));
      const [total] = await usage(user, "scope=mine");
      expect(total && comparable(total), `${user}'s total`).to.deep.equal(expectedRows((g) => g.user === user, {})[0]);
    }
  });

  it("tells each provider owner who used their GPU, by user and model, and tells carol, who has none, nothing", async () => {
    for (const owner of OWNERS) {
      const rows = await usage(owner, "scope=providers&group_by=user,model");
      expect(rows.map(comparable), owner).to.deep.equal(
        expectedRows((g) => g.owner === owner, { user: (g) => g.user, model: (g) => g.model }),
      );
    }
    expect(await usage("carol", "scope=providers&group_by=user,model")).to.deep.equal([]);
  });

  it("averages times to first byte within the durations", async () => {
    const rows = await usage("carol", "scope=mine&group_by=model");
    for (const row of rows) {
      expect(row.ttfb_ms_avg, String(row.model)).to.be.above(0);
      expect(row.ttfb_ms_avg, String(row.model)).to.be.at.most(row.duration_ms_avg);
    }
  });
});
