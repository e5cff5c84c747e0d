import { useEffect, useState } from "preact/hooks";
import { api, messageOf } from "../api.js";
import { ModelTable } from "../components/model-table.js";
import { ErrorNotice, Loading } from "../components/notice.js";
import { Page } from "../components/page.js";
import { PATHS } from "../paths.js";
import { useSession } from "../session.js";
import type { List, Model } from "../types.js";

/** ModelsPage lists the models the member can call (theirs and those shared with them), filtered by service type. */
export function ModelsPage() {
  const { user } = useSession();
  const [models, setModels] = useState<readonly Model[]>();
  const [error, setError] = useState<string>();
  const [type, setType] = useState("");

  useEffect(() => {
    api<List<Model>>("GET", "/v1/models").then(
      (answer) => setModels(answer.data),
      (failure: unknown) => setError(messageOf(failure)),
    );
  }, []);

  const types = [...new Set((models ?? []).map((model) => model.service_type))].sort();
  const shown = (models ?? []).filter((model) => type === "" || model.service_type === type);

  return (
    <Page title="Models" intro="Every model you can call with your token: yours, and those other members share with you.">
      <ErrorNotice error={error} />
      {models === undefined ? (
        error === undefined ? (
          <Loading />
        ) : null
      ) : models.length === 0 ? (
        <p>
          No model is online for you yet. <a href={PATHS.providers}>Add a provider</a> to serve your own, or ask a member to share theirs.
        </p>
      ) : (
        <>
          <div class="model-filter">
            <label for="model-type" class="model-filter-label">
              Service type
            </label>
            <select id="model-type" class="model-filter-select" value={type} onChange={(event) => setType(event.currentTarget.value)}>
              <option value="">All</option>
              {types.map((name) => (
                <option key={name} value={name}>
                  {name}
                </option>
              ))}
            </select>
            <span role="status" class="hint">
              {type === "" ? modelCount(models.length) : `${shown.length} of ${modelCount(models.length)}`}
            </span>
          </div>
          <ModelTable models={shown} me={user.name} />
        </>
      )}
    </Page>
  );
}

function modelCount(count: number): string {
  return count === 1 ? "1 model" : `${count} models`;
}
