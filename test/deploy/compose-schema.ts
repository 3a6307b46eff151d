import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';

/**
 * The official Compose Specification schema (vendored in schemas/, source in schemas/SOURCE.md),
 * compiled once. `strict: false` because the schema is not ours: Ajv's strict mode objects to
 * unions such as `type: [boolean, string, object]` with `properties`, which are valid JSON Schema.
 */
export function composeValidator(): ValidateFunction {
  const schemaPath = path.join(import.meta.dirname, 'schemas/compose-spec.json');
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as Record<string, unknown>;
  // The schema names its meta-schema as https://json-schema.org/draft-07/schema, which Ajv knows
  // as http://json-schema.org/draft-07/schema#; the content is draft-07 either way.
  delete schema.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false });
  return ajv.compile(schema);
}

export function describeErrors(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`).join('\n');
}
