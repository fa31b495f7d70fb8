import { request as httpRequest } from 'node:http';
import { http } from './server-process';

/** An answer with its headers exactly as sent (repeated headers kept apart). */
export interface RawAnswer {
  status: number;
  /** Header name (lower case) to every value sent, in order. */
  headers: Record<string, string[]>;
  body: string;
}

/**
 * One HTTP request through node:http, so a test can send any `Host` header
 * and see repeated response headers one by one (fetch joins them).
 */
export function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (res) => {
      const headers: Record<string, string[]> = {};
      for (let i = 0; i < res.rawHeaders.length; i += 2) (headers[res.rawHeaders[i].toLowerCase()] ??= []).push(res.rawHeaders[i + 1]);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** `Authorization` for HTTP Basic with the key as password, as a browser sends a saved login. */
export const basicAuth = (key: string): string => `Basic ${Buffer.from(`operator:${key}`).toString('base64')}`;

/** Signs in at `/login` with a key; returns the answer and the session cookie (`drover_session=<token>`), if one was set. */
export async function signIn(baseUrl: string, key: string, next?: string): Promise<{ status: number; location: string | null; setCookie: string[]; cookie?: string; text: string }> {
  const form = new URLSearchParams({ key, ...(next === undefined ? {} : { next }) });
  const res = await http(`${baseUrl}/login`, {
    method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' },
  });
  const setCookie = res.headers.getSetCookie();
  const session = setCookie.find((c) => c.startsWith('drover_session='));
  return { status: res.status, location: res.headers.get('location'), setCookie, cookie: session?.split(';')[0], text: res.text };
}

/** An open event stream (`/events…`): what it sent so far, and how to close it. */
export interface EventStream {
  res: Response;
  text(): string;
  /** Resolves once the stream ended (closed by either side). */
  reading: Promise<void>;
  close(): Promise<void>;
}

/** Opens a server-sent event stream and collects what it sends until closed. */
export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  let text = '';
  const reading = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk);
    } catch {
      // aborted
    }
  })();
  return { res, text: () => text, reading, close: async () => { abort.abort(); await reading; } };
}
