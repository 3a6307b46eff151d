/**
 * The exact secret strings to hide from every text edgeban writes (log lines, alerts, command
 * output), whatever field or message holds them. One per process, handed to the logger and to
 * whatever learns secrets at run time (the daemon: keys and tokens written in jail.local, a new
 * feed or control token on reload), which calls `add`; a secret once added stays hidden.
 */
export class SecretScrubber {
  private readonly secrets = new Set<string>();

  constructor(secrets: Iterable<string> = []) {
    for (const secret of secrets) this.add(secret);
  }

  /** Shorter strings are not hidden: they would match innocent text everywhere. */
  add(secret: string): void {
    if (secret.length >= 4) this.secrets.add(secret);
  }

  scrub(text: string): string {
    let out = text;
    for (const secret of this.secrets) {
      if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    }
    return out;
  }
}
