// A Cloudflare Worker that keeps HighLevel tokens with the engine, its grant
// records in a Durable Object's storage. Routes (all through one Durable
// Object, the app's token service):
//
//   POST /webhooks/highlevel   a signed install webhook: verified, then applied
//   GET  /install              the consent URL, with a state kept in storage
//   GET  /oauth/callback       the consent redirect: state checked, code exchanged
//   GET  /locations/:id        HighLevel's GET /locations/:id with a fresh token
//                              (after a 401: one refresh, however many callers)
//   GET  /records              the stored records: grant, version, status (no tokens)

import { DurableObjectStore, TokenService, consentState, parseCallback } from "../../js/workerd.mjs";

export class Tokens {
  constructor(state, env) {
    this.storage = state.storage;
    this.env = env;
    this.service = new TokenService({
      config: {
        clientId: env.CLIENT_ID,
        clientSecret: env.CLIENT_SECRET,
        baseUrl: env.BASE_URL,
        redirectUri: env.REDIRECT_URI,
        consentUrl: `${env.BASE_URL}/v2/oauth/chooselocation`,
      },
      store: new DurableObjectStore(state.storage),
      webhooks: { keys: [env.WEBHOOK_KEY] },
      engine: JSON.parse(env.ENGINE_SETTINGS ?? "{}"),
    });
  }

  async fetch(request) {
    const url = new URL(request.url);
    try {
      if (url.pathname === "/webhooks/highlevel") return await this.service.webhookResponse(request);
      if (url.pathname === "/install") {
        const state = consentState(crypto.getRandomValues(new Uint8Array(32)));
        await this.storage.put(`state:${state}`, Date.now());
        return Response.json({ url: this.service.client.consentUrl({ scopes: ["locations.readonly"], state }) });
      }
      if (url.pathname === "/oauth/callback") {
        const state = url.searchParams.get("state") ?? "";
        // One use per state.
        const known = await this.storage.delete(`state:${state}`);
        if (!known) return Response.json({ error: "unknown state" }, { status: 400 });
        const { code } = parseCallback(url.search, state);
        return Response.json(await this.service.exchangeCode(code));
      }
      if (url.pathname === "/records") {
        const records = [...(await this.storage.list({ prefix: "grant:" })).values()].map((json) => {
          const r = JSON.parse(json);
          return { grant: r.grant, version: r.version, state: r.status.state };
        });
        return Response.json(records);
      }
      const location = url.pathname.match(/^\/locations\/([^/]+)$/);
      if (location) {
        const grant = location[1];
        let token = await this.service.accessToken(grant);
        let answer = await this.#api(grant, token);
        let refreshed = false;
        if (answer.status === 401) {
          token = await this.service.tokenAfter401(grant, token);
          answer = await this.#api(grant, token);
          refreshed = true;
        }
        return new Response(await answer.text(), {
          status: answer.status,
          headers: { "x-after-401": String(refreshed) },
        });
      }
      return new Response("not found", { status: 404 });
    } catch (error) {
      return Response.json({ error: error.kind ?? error.name, message: error.message }, { status: 500 });
    }
  }

  #api(locationId, token) {
    return fetch(`${this.env.BASE_URL}/locations/${locationId}`, {
      headers: { authorization: `Bearer ${token}`, version: "2021-07-28" },
    });
  }
}

export default {
  async fetch(request, env) {
    return env.TOKENS.get(env.TOKENS.idFromName("app")).fetch(request);
  },
};
