/**
 * The real, unmodified Pusher packages pointed at a Switchboard node: pusher-js 8 (its Node build, WebSocket
 * transport) authorized by the `pusher` 5 server SDK, and that SDK for the HTTP API.
 */
import Pusher from 'pusher';
import PusherModule from 'pusher-js';
import type { Channel, ChannelAuthorizationCallback, PresenceChannel, UserAuthenticationCallback } from 'pusher-js';

/**
 * pusher-js ships CommonJS whose `module.exports` is the class, with types that declare it as the default
 * export: under NodeNext the default import is the class at run time and the module namespace to the types.
 */
export type PusherJS = PusherModule.default;
const PusherJS = PusherModule as unknown as typeof PusherModule.default;

export interface TestApp {
  id: string;
  key: string;
  secret: string;
  clientEvents?: boolean;
  maxPresenceMembers?: number;
  maxEventBytes?: number;
}

/** The `pusher` server SDK for one app on a node. */
export function serverSdk(app: TestApp, port: number, options: { secret?: string } = {}): Pusher {
  return new Pusher({ appId: app.id, key: app.key, secret: options.secret ?? app.secret, host: '127.0.0.1', port: String(port), useTLS: false });
}

export interface ClientOptions {
  /** The presence user this client subscribes as (`channel_data.user_id`), with its info. */
  user?: { id: string; info?: Record<string, unknown> };
  /** Sign with this secret instead of the app's (a wrong signature). */
  secret?: string;
  /** The user id `pusher.signin()` authenticates as. */
  signinAs?: string;
}

/** A pusher-js client whose channel authorization is the server SDK's `authorizeChannel`. */
export function pusherJs(app: TestApp, port: number, options: ClientOptions = {}): PusherJS {
  const signer = serverSdk(app, port, options.secret !== undefined ? { secret: options.secret } : {});
  return new PusherJS(app.key, {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    forceTLS: false,
    enabledTransports: ['ws'],
    channelAuthorization: {
      transport: 'ajax',
      endpoint: '/unused',
      customHandler: ({ socketId, channelName }: { socketId: string; channelName: string }, callback: ChannelAuthorizationCallback) => {
        const presence =
          channelName.startsWith('presence-') && options.user !== undefined ? { user_id: options.user.id, user_info: options.user.info ?? {} } : undefined;
        callback(null, signer.authorizeChannel(socketId, channelName, presence));
      },
    },
    userAuthentication: {
      transport: 'ajax',
      endpoint: '/unused',
      customHandler: ({ socketId }: { socketId: string }, callback: UserAuthenticationCallback) => {
        callback(null, signer.authenticateUser(socketId, { id: options.signinAs ?? 'anonymous' }));
      },
    },
  });
}

/** Subscribes and resolves once `pusher:subscription_succeeded` arrives (rejects on `subscription_error`). */
export function subscribed<T extends Channel = Channel>(client: PusherJS, name: string, timeoutMs = 10_000): Promise<T> {
  const channel = client.subscribe(name) as T;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no subscription_succeeded for ${name} in ${timeoutMs} ms`)), timeoutMs);
    channel.bind('pusher:subscription_succeeded', () => {
      clearTimeout(timer);
      resolve(channel);
    });
    channel.bind('pusher:subscription_error', (err: unknown) => {
      clearTimeout(timer);
      reject(Object.assign(new Error(`subscription_error on ${name}: ${JSON.stringify(err)}`), { detail: err }));
    });
  });
}

export type { PresenceChannel };

/** Resolves once the client is connected, with its socket id. */
export function connected(client: PusherJS, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    if (client.connection.state === 'connected') return resolve(client.connection.socket_id);
    const timer = setTimeout(() => reject(new Error(`pusher-js not connected in ${timeoutMs} ms (state ${client.connection.state})`)), timeoutMs);
    client.connection.bind('connected', () => {
      clearTimeout(timer);
      resolve(client.connection.socket_id);
    });
  });
}
