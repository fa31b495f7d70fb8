import IORedis, { Cluster, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * Where the Redis queues live: one server (`redis://`, `rediss://`) or a Redis
 * Cluster given by seed nodes (`redis+cluster://[user:pass@]host:port[,host:port…]`,
 * `rediss+cluster://` for TLS). One seed is enough (the client discovers the
 * others); several keep the start-up working while a seed is down.
 */
export type RedisTarget =
  | { kind: 'single'; url: string }
  | { kind: 'cluster'; nodes: Array<{ host: string; port: number }>; username?: string; password?: string; tls: boolean };

/** The schemes of a Redis Cluster URL. */
export const REDIS_CLUSTER_SCHEMES = ['redis+cluster:', 'rediss+cluster:'] as const;

/** Whether a REDIS_URL names a Redis Cluster (`redis+cluster://…`). */
export function isRedisClusterUrl(url: string): boolean {
  return /^rediss?\+cluster:\/\//i.test(url);
}

/**
 * Parses a REDIS_URL. Throws `TypeError` with a message naming what is wrong
 * (never echoing the password).
 */
export function parseRedisTarget(url: string): RedisTarget {
  if (!isRedisClusterUrl(url)) return { kind: 'single', url };
  const m = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]*)\/?(?:[?#].*)?$/i.exec(url);
  if (!m) throw new TypeError('a Redis Cluster URL looks like redis+cluster://[user:password@]host:port[,host:port...]');
  const [, scheme, auth, hosts] = m;
  const nodes = hosts.split(',').map((h) => h.trim()).filter((h) => h !== '').map((hostPort) => {
    const hp = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(hostPort);
    if (!hp || Number(hp[2]) < 1 || Number(hp[2]) > 65535) {
      throw new TypeError(`a Redis Cluster seed node must be host:port (got "${hostPort.replace(/[^A-Za-z0-9.:[\]-]/g, '?')}")`);
    }
    return { host: hp[1].replace(/^\[|\]$/g, ''), port: Number(hp[2]) };
  });
  if (nodes.length === 0) throw new TypeError('a Redis Cluster URL needs at least one seed node host:port');
  let username: string | undefined;
  let password: string | undefined;
  if (auth !== undefined && auth !== '') {
    const i = auth.indexOf(':');
    username = decodeURIComponent(i < 0 ? auth : auth.slice(0, i)) || undefined;
    password = i < 0 ? undefined : decodeURIComponent(auth.slice(i + 1));
  }
  return { kind: 'cluster', nodes, username, password, tls: scheme.toLowerCase() === 'rediss' };
}

/** A Redis URL for messages: hosts and ports only, never a password. */
export function redisTargetName(target: RedisTarget): string {
  if (target.kind === 'cluster') return `the Redis Cluster at ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  try {
    return `Redis at ${new URL(target.url).host}`;
  } catch {
    return 'Redis';
  }
}

/** Options of one Redis connection, whatever the target. */
export type RedisClientOptions = Pick<RedisOptions, 'maxRetriesPerRequest' | 'enableOfflineQueue' | 'lazyConnect' | 'retryStrategy'>;

/**
 * A connection to the target: an `IORedis` for one server, an ioredis
 * `Cluster` for a cluster (BullMQ takes either). On a cluster the per-node
 * options (retries, TLS, credentials) go to every node, and a failover
 * (a replica promoted) is followed by refreshing the slot map.
 */
export function createRedisClient(target: RedisTarget, options: RedisClientOptions): IORedis | Cluster {
  if (target.kind === 'single') return new IORedis(target.url, options);
  const clusterOptions: ClusterOptions = {
    lazyConnect: options.lazyConnect,
    enableOfflineQueue: options.enableOfflineQueue,
    // During a failover the nodes disagree on who owns a slot for a few seconds (MOVED back
    // and forth): wait between redirections rather than give up after 16 at once.
    maxRedirections: 64,
    retryDelayOnMoved: 100,
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 300,
    retryDelayOnTryAgain: 200,
    slotsRefreshTimeout: 2000,
    clusterRetryStrategy: (times) => (options.retryStrategy ? options.retryStrategy(times) ?? null : Math.min(times * 500, 5000)),
    redisOptions: {
      maxRetriesPerRequest: options.maxRetriesPerRequest,
      username: target.username,
      password: target.password,
      ...(target.tls ? { tls: {} } : {}),
    },
  };
  return new Cluster(target.nodes as ClusterNode[], clusterOptions);
}
