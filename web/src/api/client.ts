// The typed API client: paths and bodies come from the server's OpenAPI
// document (src/api/schema.d.ts, generated from web/openapi.json by
// `npm run api-types`). Every call carries the session's access token; a
// 401 refreshes the pair once and repeats the call.

import createClient from "openapi-fetch";
import type { components, paths } from "./schema";
import { Session } from "./session";

export type Item = components["schemas"]["ItemBody"];
export type FileItem = components["schemas"]["FileBody"];
export type Folder = components["schemas"]["FolderBody"];
export type Me = components["schemas"]["MeBody"];
export type Link = components["schemas"]["LinkBody"];
export type Share = components["schemas"]["ShareBody"];
export type Revision = components["schemas"]["RevisionBody"];
export type Problem = components["schemas"]["Problem"];

/** A problem+json answer, as an exception the UI can show. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const session = new Session(window.localStorage, (...a) => window.fetch(...a));
window.addEventListener("storage", (e) => {
  if (e.key === null || e.key === "stowage.session") session.adoptStored();
});

/** fetch with the bearer token, refreshing once on a 401. */
export async function authedFetch(input: Request): Promise<Response> {
  const spare = input.clone();
  const token = await session.accessToken();
  if (token) input.headers.set("Authorization", `Bearer ${token}`);
  const res = await window.fetch(input);
  if (res.status !== 401 || !token) return res;
  if (!(await session.refresh(token))) return res;
  const again = await session.accessToken();
  if (again) spare.headers.set("Authorization", `Bearer ${again}`);
  return window.fetch(spare);
}

export const api = createClient<paths>({
  baseUrl: window.location.origin,
  fetch: authedFetch,
});

/** The data of a call, or an [`ApiError`] with the server's words. */
export async function ok<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (response.ok) return data as T;
  throw toError(response, error);
}

export function toError(response: Response, error: unknown): ApiError {
  const p = (error ?? {}) as Partial<Problem>;
  const message = p.detail || p.title || `The server answered ${response.status}.`;
  return new ApiError(response.status, p.code ?? "unknown", message);
}

/** What to show for any failure. */
export function describe(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof TypeError) return "The server could not be reached. Check the connection and try again.";
  return e instanceof Error ? e.message : String(e);
}
