/**
 * What the engine needs from a filter definition. The config reader's FilterDefinition
 * (src/config/fail2ban/filter-definition.ts) has this shape and more; structural typing lets
 * either be passed, and tests build these by hand.
 */
export interface SourceRef { file: string; line: number; key: string }

/** One regex; config substitution done, engine tags (<HOST>, <F-USER>, …) left in. */
export interface RegexSpec { pattern: string; source: SourceRef }

export interface EngineFilterDefinition {
  name: string;
  file: string;
  prefregex: RegexSpec | null;
  failregex: RegexSpec[];
  ignoreregex: RegexSpec[];
  maxlines: number;
  datepattern: RegexSpec | null;
  logtimezone: string | null;
}
