/**
 * undici's Agent, Client and request() without its index. The index also loads fetch, WebSocket,
 * EventSource, the cache stores and the mock agents, which edgeban never uses: 5 MiB of an idle
 * daemon's RSS (bench/memory.ts, the bundle: 95 -> 90 MiB). These are undici's own modules, wired
 * as its index wires them; an upgrade that moves them fails the build and every HTTP test.
 */
import type * as Undici from 'undici';
import api from 'undici/lib/api/index.js';
import util from 'undici/lib/core/util.js';
import AgentClass from 'undici/lib/dispatcher/agent.js';
import ClientClass from 'undici/lib/dispatcher/client.js';
import DispatcherClass from 'undici/lib/dispatcher/dispatcher.js';

// What undici's index does first: request(), stream() … as methods of every dispatcher.
Object.assign(DispatcherClass.prototype, api);

export const Agent: typeof Undici.Agent = AgentClass;
export type Agent = Undici.Agent;
export const Client: typeof Undici.Client = ClientClass;
export type Client = Undici.Client;

type RequestOptions = Omit<Undici.Dispatcher.RequestOptions, 'origin' | 'path' | 'method'> & {
  method?: Undici.Dispatcher.HttpMethod;
  dispatcher: Undici.Dispatcher;
};

/**
 * undici's request(url, options) as its index builds it (makeDispatcher), for the calls edgeban
 * makes: a URL and options that name their dispatcher (there is no global one to fall back on).
 */
export const request = ((url: string | URL, options: RequestOptions) => {
  const { dispatcher, ...rest } = options;
  const parsed = util.parseURL(url);
  return dispatcher.request({
    ...rest,
    origin: parsed.origin,
    path: parsed.search ? `${parsed.pathname}${parsed.search}` : parsed.pathname,
    method: options.method || (options.body ? 'PUT' : 'GET'),
  });
}) as typeof Undici.request;
