// The engine answers errors as {"message": "..."}; anything else is shown raw.
// Apart from unixHttp.ts so that the serving process, which reads engine
// errors from its lookups, does not load node:http (doctor's client) at start.
export function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed?.message === 'string') return parsed.message;
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 300);
}
