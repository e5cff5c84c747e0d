import { useCallback, useRef, useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import { ErrorNotice, Loading } from "../components/notice.js";
import { Page } from "../components/page.js";
import { ProviderAdd } from "../components/provider-add.js";
import { ProviderCard } from "../components/provider-card.js";
import { useInterval } from "../components/use-interval.js";
import type { List, Provider } from "../types.js";

/** POLL_MS is how often the page asks for its providers: state, heartbeats and load change by themselves. */
const POLL_MS = 3_000;

/**
 * ProvidersPage is "My providers": each of the member's providers as a card, kept current by polling, with the
 * switches an owner has (pause, sharing), and how to add one.
 */
export function ProvidersPage() {
  const [providers, setProviders] = useState<readonly Provider[]>();
  const [error, setError] = useState<string>();
  // A poll sent before a change may be answered after it, with the state from before: changes counts the answers to
  // the owner's changes, and a poll that saw one arrive while it was out is dropped.
  const changes = useRef(0);

  useInterval(async () => {
    const before = changes.current;
    try {
      const answer = await api<List<Provider>>("GET", "/api/providers");
      if (changes.current === before) setProviders(answer.data);
      setError(undefined);
    } catch (failure) {
      setError(messageOf(failure));
    }
  }, POLL_MS);

  const changed = useCallback((provider: Provider) => {
    changes.current += 1;
    setProviders((list) => list?.map((entry) => (entry.id === provider.id ? provider : entry)));
  }, []);

  return (
    <Page title="My providers" intro="The machines that serve your models to the mesh: their state, load and who may use them.">
      <ErrorNotice error={error} />
      {providers === undefined ? (
        error === undefined ? (
          <Loading />
        ) : null
      ) : providers.length === 0 ? (
        <p>You have no providers yet. Start an agent next to a model server, as below, and it shows up here within seconds.</p>
      ) : (
        <div class="cards">
          {providers.map((provider) => (
            <ProviderCard key={provider.id} provider={provider} onChanged={changed} />
          ))}
        </div>
      )}
      <ProviderAdd />
    </Page>
  );
}
