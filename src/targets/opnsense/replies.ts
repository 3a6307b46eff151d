import { z } from 'zod';

// Schemas of the replies edgeban relies on (docs/opnsense-api.md). Numbers may arrive as strings.

export const StatusReplySchema = z
  .object({
    status: z.string(),
    status_msg: z.string().optional(),
  })
  .loose();

export const ListReplySchema = z.object({
  total: z.coerce.number().int().nonnegative(),
  rowCount: z.coerce.number().int(),
  current: z.coerce.number().int(),
  rows: z.array(z.object({ ip: z.string() }).loose()),
});
export type ListReply = z.infer<typeof ListReplySchema>;

export const AliasNamesReplySchema = z.array(z.string());

/** `{"uuid":…}`, or `[]` when the alias does not exist (not `{}`, not a 404). */
export const AliasUuidReplySchema = z.union([z.object({ uuid: z.string().min(1) }).loose(), z.array(z.unknown()).length(0)]);

const SelectableSchema = z
  .object({
    value: z.string(),
    selected: z.union([z.number(), z.boolean(), z.string()]),
  })
  .loose();

export const AliasItemReplySchema = z.union([
  z
    .object({
      alias: z
        .object({
          name: z.string(),
          enabled: z.union([z.string(), z.number()]).optional(),
          type: z.record(z.string(), SelectableSchema),
        })
        .loose(),
    })
    .loose(),
  z.array(z.unknown()).length(0),
]);

export const TableSizeReplySchema = z
  .object({
    status: z.string().optional(),
    size: z.coerce.number().int().nonnegative(),
    used: z.coerce.number().int().nonnegative(),
  })
  .loose();

export const KillStatesReplySchema = z
  .object({
    result: z.string(),
    dropped_states: z.coerce.number().int().nonnegative().optional(),
  })
  .loose();

/** 4xx/5xx bodies: `{"status":401,"message":…}` or `{"errorMessage":…,"errorTitle":…}`. */
export const ErrorReplySchema = z
  .object({
    message: z.string().optional(),
    errorMessage: z.string().optional(),
    errorTitle: z.string().optional(),
  })
  .loose();

/** core/firmware/status: only the installed product matters here. */
export const FirmwareStatusReplySchema = z
  .object({
    product: z
      .object({
        product_version: z.string().min(1),
        product_series: z.string().optional(),
      })
      .loose(),
  })
  .loose();

/** alias/add_item, filter/add_rule: `{"result":"saved","uuid":…}` or `{"result":"failed","validations":{…}}`. */
export const SavedReplySchema = z
  .object({
    result: z.string(),
    uuid: z.string().optional(),
    validations: z.record(z.string(), z.union([z.string(), z.array(z.string())])).optional(),
  })
  .loose();

/** filter/savepoint (24.1–26.1). */
export const SavepointReplySchema = z
  .object({
    status: z.string(),
    revision: z.union([z.string(), z.number()]).transform(String).optional(),
  })
  .loose();

/** An option field as get_* renders it: `{key:{value,selected}}`. */
export const OptionFieldSchema = z.record(z.string(), SelectableSchema);

/** filter/get_rule[/uuid]: option fields rendered as option maps, the rest as strings; `[]` when unknown. */
export const RuleItemReplySchema = z.union([z.object({ rule: z.record(z.string(), z.unknown()) }).loose(), z.array(z.unknown()).length(0)]);

/** filter/search_rule: rows carry the uuid and (raw or labelled) field values. */
export const SearchRuleReplySchema = z
  .object({
    total: z.coerce.number().int().nonnegative(),
    rows: z.array(z.object({ uuid: z.string() }).loose()),
  })
  .loose();
