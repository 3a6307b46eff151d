import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * A fresh self-signed certificate (EC P-256, two days) in `dir`, for `name`: an IP address gets it
 * as its subjectAltName too, as TLS clients check. openssl comes from Debian (`.ci/run`).
 */
export function selfSignedCertificate(dir: string, name = '127.0.0.1', prefix = 'tls'): { cert: string; key: string } {
  const cert = path.join(dir, `${prefix}-cert.pem`);
  const key = path.join(dir, `${prefix}-key.pem`);
  const san = /^[\d.]+$|:/.test(name) ? ['-addext', `subjectAltName=IP:${name}`] : [];
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      ...san,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key };
}
