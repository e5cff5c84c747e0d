import { Page } from "../components/page.js";

export function ModelsPage() {
  return <Page title="Models">{null}</Page>;
}
