// The OpenID Connect issuer of the authentication tests (tests/auth): node-oidc-provider,
// configured with one client per role and per signing algorithm, JWT access tokens for the
// QuDAG MCP API (RFC 9068), opaque tokens for the introspection path (RFC 7662), key
// rotation, and three test-only routes under /test/. Fixed secrets and in-memory state: it
// listens on 127.0.0.1 only.
//
// usage: node issuer.mjs PORT
//   OIDC_EXTRA_ALGS=ES512,Ed25519  also offer tokens signed with ES512 (a P-521 key) and the
//                                  fully specified Ed25519 (RFC 9864), which the server refuses
//
// Prints "ready <issuer>" on stdout once it listens; SIGTERM or SIGINT stop it (status 0).
// README.md lists the clients, the claims and the /test/ routes.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import { CompactSign, importJWK } from 'jose';
import Provider from 'oidc-provider';

function fail(message) {
  process.stderr.write(`issuer: ${message}\n`);
  process.exit(2);
}

const PORT = Number(process.argv[2]);
if (!Number.isInteger(PORT) || PORT < 1 || PORT > 65535) fail(`usage: node issuer.mjs PORT (got "${process.argv[2] ?? ''}")`);
const ISSUER = `http://127.0.0.1:${PORT}`;

// The audience of the QuDAG MCP API. Tokens requested without `resource` carry it; a token
// requested with resource=<absolute URI> carries that URI instead (a wrong audience, for a
// test). Resource indicators are URIs, so the default audience itself is `urn:qudag-mcp-api`.
const AUDIENCE = 'qudag-mcp-api';
const DEFAULT_RESOURCE = 'urn:qudag-mcp-api';
// Any client asking for this resource gets an opaque token with the default audience.
const OPAQUE_RESOURCE = 'urn:qudag-mcp:opaque';
const TOKEN_TTL = 3600;
const HS256_SECRET = 'qudag-hs256-test-secret-0123456789abcdef';

// The API's scopes, and those a role's client gets when its token request names none.
const SCOPES = ['mcp:read', 'mcp:write', 'mcp:execute', 'mcp:monitor', 'mcp:audit', 'mcp:admin'];
const ROLE_SCOPES = {
  admin: SCOPES,
  developer: ['mcp:read', 'mcp:write', 'mcp:execute'],
  operator: ['mcp:read', 'mcp:execute', 'mcp:monitor'],
  auditor: ['mcp:read', 'mcp:monitor', 'mcp:audit'],
  readonly: ['mcp:read'],
};

const EXTRA_ALGS = (process.env.OIDC_EXTRA_ALGS ?? '').split(',').map((a) => a.trim()).filter(Boolean);
for (const alg of EXTRA_ALGS) {
  if (!['ES512', 'Ed25519'].includes(alg)) fail(`OIDC_EXTRA_ALGS: unknown algorithm "${alg}" (known: ES512, Ed25519)`);
}
const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'EdDSA', 'HS256', ...EXTRA_ALGS];
const KEY_TYPE = {
  RS256: 'rsa', RS384: 'rsa', RS512: 'rsa', PS256: 'rsa', PS384: 'rsa', PS512: 'rsa',
  ES256: 'p256', ES384: 'p384', ES512: 'p521', EdDSA: 'ed25519', Ed25519: 'ed25519',
};
const KEY_TYPES = ['rsa', 'p256', 'p384', 'ed25519', ...(EXTRA_ALGS.includes('ES512') ? ['p521'] : [])];

// ---------------------------------------------------------------------------------------
// Clients: secret `<client_id>-secret`, client_credentials only. `roles` becomes the
// `roles` claim (none when null); `alg` signs its tokens; `opaque` clients get opaque ones.

const CLIENTS = new Map([
  { id: 'qudag-admin', roles: ['admin'] },
  { id: 'qudag-developer', roles: ['developer'] },
  { id: 'qudag-operator', roles: ['operator'] },
  { id: 'qudag-auditor', roles: ['auditor'] },
  { id: 'qudag-readonly', roles: ['readonly'] },
  { id: 'qudag-multirole', roles: ['developer', 'auditor'] },
  { id: 'qudag-noroles', roles: null },
  ...ALGS.map((alg) => ({ id: `qudag-${alg.toLowerCase()}`, roles: ['developer'], alg })),
  { id: 'qudag-opaque', roles: ['developer'], opaque: true },
  // The MCP server's own credential: it may introspect every client's tokens.
  { id: 'qudag-mcp-server', roles: null, introspectsAll: true },
].map((client) => [client.id, { alg: 'RS256', opaque: false, introspectsAll: false, ...client }]));

function defaultScopes(roles) {
  const granted = new Set((roles ?? []).flatMap((role) => ROLE_SCOPES[role] ?? []));
  return SCOPES.filter((scope) => granted.has(scope));
}

// ---------------------------------------------------------------------------------------
// Signing keys in generations, newest first: the newest signs, the older ones stay in the
// JWKS until a rotation retires them. kid = <type>-g<generation>-<digest of the public key>.

function generateKey(type, label) {
  const { privateKey } = {
    rsa: () => crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }),
    p256: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }),
    p384: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' }),
    p521: () => crypto.generateKeyPairSync('ec', { namedCurve: 'P-521' }),
    ed25519: () => crypto.generateKeyPairSync('ed25519'),
  }[type]();
  const jwk = privateKey.export({ format: 'jwk' });
  const thumbprint = crypto.createHash('sha256').update(JSON.stringify(jwk.x ?? jwk.n)).digest('base64url');
  return { ...jwk, kid: `${type}-${label}-${thumbprint.slice(0, 8)}`, use: 'sig' };
}

function generation(gen) {
  return { gen, keys: Object.fromEntries(KEY_TYPES.map((type) => [type, generateKey(type, `g${gen}`)])) };
}

let generations = [generation(1)];
// Never published: a token signed with one of these names a known kid but does not verify.
const foreignKeys = Object.fromEntries(KEY_TYPES.map((type) => [type, generateKey(type, 'foreign')]));

const currentKey = (alg) => generations[0].keys[KEY_TYPE[alg]];
const publishedKeys = () => generations.flatMap((g) => KEY_TYPES.map((type) => ({ ...g.keys[type] })));

// ---------------------------------------------------------------------------------------
// The provider's state (opaque tokens, client-credentials grants) in this process, kept
// across the provider rebuilt by a rotation.

const store = new Map();

class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  async upsert(id, payload, expiresIn) {
    store.set(`${this.model}:${id}`, { payload, expires: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
  }

  async find(id) {
    const entry = store.get(`${this.model}:${id}`);
    if (entry && entry.expires <= Date.now()) store.delete(`${this.model}:${id}`);
    return entry && entry.expires > Date.now() ? entry.payload : undefined;
  }

  async destroy(id) {
    store.delete(`${this.model}:${id}`);
  }

  async consume(id) {
    const payload = await this.find(id);
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  // Lookups of the flows this issuer does not offer (sessions, device codes, grants).
  async findByUid() {
    return undefined;
  }

  async findByUserCode() {
    return undefined;
  }

  async revokeByGrantId() {}
}

setInterval(() => {
  const now = Date.now();
  for (const [key, entry] of store) if (entry.expires <= now) store.delete(key);
}, 30_000).unref();

// ---------------------------------------------------------------------------------------
// The provider. Its keys are fixed when it is built, so a rotation builds a new one.

function resourceServer(indicator, clientId) {
  const client = CLIENTS.get(clientId);
  const opaque = client?.opaque || indicator === OPAQUE_RESOURCE;
  const alg = client?.alg ?? 'RS256';
  return {
    scope: SCOPES.join(' '),
    audience: indicator === DEFAULT_RESOURCE || indicator === OPAQUE_RESOURCE ? AUDIENCE : indicator,
    accessTokenTTL: TOKEN_TTL,
    accessTokenFormat: opaque ? 'opaque' : 'jwt',
    ...(opaque ? {} : {
      jwt: { sign: alg === 'HS256' ? { alg, key: Buffer.from(HS256_SECRET) } : { alg, kid: currentKey(alg).kid } },
    }),
  };
}

function buildProvider() {
  const provider = new Provider(ISSUER, {
    adapter: MemoryAdapter,
    clients: [...CLIENTS.keys()].map((id) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    })),
    jwks: { keys: publishedKeys() },
    scopes: SCOPES,
    ttl: { ClientCredentials: TOKEN_TTL, AccessToken: TOKEN_TTL },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (ctx, client, token) => (
          CLIENTS.get(client.clientId)?.introspectsAll === true || token.clientId === client.clientId
        ),
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async (ctx, client, oneOf) => oneOf ?? DEFAULT_RESOURCE,
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator, client) => resourceServer(indicator, client.clientId),
      },
    },
    extraTokenClaims: async (ctx, token) => {
      const roles = CLIENTS.get(token.clientId)?.roles;
      // The client is the subject of its own client-credentials token: say so, so
      // introspection answers name a `sub` as JWT access tokens do.
      return { sub: token.clientId, ...(roles ? { roles: [...roles] } : {}) };
    },
    renderError: async (ctx, out) => {
      ctx.type = 'application/json; charset=utf-8';
      ctx.body = out;
    },
  });
  provider.on('server_error', (ctx, err) => log(`server_error ${ctx.method} ${ctx.path}: ${err?.stack ?? err}`));
  return provider;
}

let handleOAuth = buildProvider().callback();

function keys() {
  return {
    generation: generations[0].gen,
    signing_kids: Object.fromEntries(ALGS.filter((alg) => alg !== 'HS256').map((alg) => [alg, currentKey(alg).kid])),
    published_kids: publishedKeys().map((key) => key.kid),
  };
}

function rotate(retire) {
  const next = generation(generations[0].gen + 1);
  generations = retire ? [next] : [next, ...generations];
  handleOAuth = buildProvider().callback();
  log(`rotated: generation ${next.gen} signs${retire ? ', older generations retired' : ''}`);
  return keys();
}

// ---------------------------------------------------------------------------------------
// Test-only routes.

// Requests per endpoint since the start or the last `GET /test/stats?reset=1`.
const stats = { discovery: 0, jwks: 0, token: 0, introspection: 0 };
const STAT_OF = { '/jwks': 'jwks', '/token': 'token', '/token/introspection': 'introspection' };

// `POST /test/sign`: a token signed by this issuer with the claims and header given, for the
// negative tests (expired, wrong issuer, unknown kid, alg none, ...). Body: `alg` (default
// RS256, or none), `payload` and `header` merged over the defaults (null removes a member),
// `key` (`foreign`: an unpublished key under the current kid), `secret` (for HS256).
async function sign({ alg = 'RS256', payload = {}, header = {}, key = 'current', secret = HS256_SECRET }) {
  const now = Math.floor(Date.now() / 1000);
  const claims = merge({
    iss: ISSUER,
    sub: 'qudag-developer',
    client_id: 'qudag-developer',
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    jti: crypto.randomUUID(),
    scope: defaultScopes(['developer']).join(' '),
    roles: ['developer'],
  }, payload);
  const body = Buffer.from(JSON.stringify(claims));
  if (alg === 'none') return `${b64url(JSON.stringify(merge({ alg, typ: 'at+jwt' }, header)))}.${b64url(body)}.`;
  let signingKey;
  let kid;
  if (alg === 'HS256') {
    signingKey = new TextEncoder().encode(secret);
  } else {
    if (!KEY_TYPE[alg]) throw Object.assign(new Error(`unsupported alg "${alg}"`), { status: 400 });
    const jwk = currentKey(alg);
    kid = jwk.kid;
    signingKey = await importJWK(key === 'foreign' ? foreignKeys[KEY_TYPE[alg]] : jwk, alg);
  }
  return new CompactSign(body).setProtectedHeader(merge({ alg, typ: 'at+jwt', ...(kid ? { kid } : {}) }, header)).sign(signingKey);
}

function merge(base, changes) {
  const out = { ...base };
  for (const [name, value] of Object.entries(changes)) {
    if (value === null) delete out[name];
    else out[name] = value;
  }
  return out;
}

const b64url = (data) => Buffer.from(data).toString('base64url');

async function handleTest(req, res, url) {
  const route = `${req.method} ${url.pathname}`;
  if (route === 'GET /test/stats') {
    const counts = { ...stats };
    if (url.searchParams.get('reset') === '1') for (const name of Object.keys(stats)) stats[name] = 0;
    return sendJson(res, 200, counts);
  }
  if (route === 'POST /test/rotate') return sendJson(res, 200, rotate(url.searchParams.get('retire') === '1'));
  if (route === 'POST /test/sign') {
    const text = await readBody(req);
    let input;
    try {
      input = text ? JSON.parse(text) : {};
    } catch (err) {
      return sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
    }
    return sendJson(res, 200, { token: await sign(input) });
  }
  return sendJson(res, 404, { error: 'not_found', error_description: `no test route ${route}` });
}

// ---------------------------------------------------------------------------------------
// HTTP.

function log(line) {
  process.stdout.write(`${new Date().toISOString()} ${line}\n`);
}

function sendJson(res, status, body) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
  res.end(text);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

// A client-credentials request naming no scope gets its roles' scopes, as hosted
// authorization servers grant a client's default scopes; the provider itself would grant
// none. The provider reads a body parsed upstream from `req.body`.
async function addDefaultScopes(req) {
  if (!/^application\/x-www-form-urlencoded/i.test(req.headers['content-type'] ?? '')) return;
  const form = new URLSearchParams(await readBody(req));
  if (form.get('grant_type') === 'client_credentials' && !form.has('scope')) {
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const user = basic ? decodeURIComponent(Buffer.from(basic[1], 'base64').toString('utf8').split(':')[0]) : '';
    const scopes = defaultScopes(CLIENTS.get(user || form.get('client_id'))?.roles);
    if (scopes.length) form.set('scope', scopes.join(' '));
  }
  req.body = form.toString();
}

// The provider warns once that the body was parsed upstream: that is addDefaultScopes.
const warn = console.warn;
console.warn = (...args) => {
  if (!String(args[0]).includes('already parsed request body detected')) warn(...args);
};

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, ISSUER);
    if (url.pathname.startsWith('/.well-known/')) stats.discovery += 1;
    else if (STAT_OF[url.pathname]) stats[STAT_OF[url.pathname]] += 1;
    if (url.pathname.startsWith('/test/')) return await handleTest(req, res, url);
    if (req.method === 'POST' && url.pathname === '/token') await addDefaultScopes(req);
    return handleOAuth(req, res);
  } catch (err) {
    if ((err.status ?? 500) >= 500) log(`error ${req.method} ${req.url}: ${err.stack ?? err}`);
    if (res.headersSent) return res.destroy();
    return sendJson(res, err.status ?? 500, { error: 'invalid_request', error_description: err.message });
  }
});
server.keepAliveTimeout = 5000;

function stop(signal) {
  log(`${signal}: stopping`);
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${PORT}: ${err.message}`));
server.listen(PORT, '127.0.0.1', () => {
  log(`issuer ${ISSUER}, audience ${AUDIENCE}, signing kids ${JSON.stringify(keys().signing_kids)}`);
  process.stdout.write(`ready ${ISSUER}\n`);
});
