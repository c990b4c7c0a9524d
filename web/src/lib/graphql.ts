// Every GraphQL document in the UI is written with this `graphql` tag: gql.tada types
// it from the committed schema.graphql, so a schema change that breaks a query fails tsc.
import { initGraphQLTada } from "gql.tada";
import type { introspection } from "./graphql-env.d.ts";

export const graphql = initGraphQLTada<{
  introspection: introspection;
  scalars: {
    DateTime: string;
    JSON: Record<string, unknown>;
    StringMap: Record<string, string>;
  };
}>();

export type { FragmentOf, ResultOf, VariablesOf } from "gql.tada";
export { readFragment } from "gql.tada";
