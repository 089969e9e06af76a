// Types of hoopai-oauth/token-only: token requests and their answers only.
import type { ClientOptions, FetchInit, HeadersLike, Token } from "./index.js";

export type { ClientOptions, ErrorFields, ErrorKindName, FetchInit, HeadersLike, OAuthError, Token } from "./index.js";

export class OAuthClient {
  constructor(options: ClientOptions);
  constructor(clientId: string, clientSecret: string, baseUrl?: string | null, redirectUri?: string | null, apiVersion?: "v2" | "v3" | null);
  readonly baseUrl: string;
  readonly clientId: string;
  readonly appId: string;
  readonly redirectUri: string | undefined;
  readonly apiVersion: "v2" | "v3";
  toJSON(): { clientId: string; baseUrl: string; apiVersion: string; clientSecret: string };
  refreshRequest(refreshToken: string, userType?: "Company" | "Location" | null): FetchInit;
  codeExchangeRequest(code: string, userType?: "Company" | "Location" | null): FetchInit;
  free(): void;
}

export function parseTokenResponse(status: number, headers: HeadersLike, body: Uint8Array, sentAtMs: number): Token;
export function redact(value: string): string;
export function maxBodyBytes(): number;
