/**
 * An offline CloudFormation template checker over the AWS resource specification shipped in
 * @aws-cdk/aws-service-spec: it parses YAML with the short intrinsic tags and checks resource
 * types, property names and shapes (nested types included), required properties, GetAtt
 * attributes, Ref / Sub / Condition / DependsOn / FindInMap targets, and ImportValue names
 * against the exports other stacks produce.
 */
import { createRequire } from "node:module";
import { parseDocument } from "yaml";

// biome-ignore lint/suspicious/noExplicitAny: the spec database and templates are untyped JSON
type Any = any;

const { loadAwsServiceSpec } = createRequire(import.meta.url)("@aws-cdk/aws-service-spec") as {
  loadAwsServiceSpec: () => Promise<Any>;
};

const FUNCTIONS: Record<string, string> = {
  Ref: "Ref",
  Condition: "Condition",
  GetAtt: "Fn::GetAtt",
  Sub: "Fn::Sub",
  Join: "Fn::Join",
  Select: "Fn::Select",
  Split: "Fn::Split",
  If: "Fn::If",
  Equals: "Fn::Equals",
  Not: "Fn::Not",
  And: "Fn::And",
  Or: "Fn::Or",
  FindInMap: "Fn::FindInMap",
  ImportValue: "Fn::ImportValue",
  GetAZs: "Fn::GetAZs",
  Base64: "Fn::Base64",
  Cidr: "Fn::Cidr",
  Transform: "Fn::Transform",
  Length: "Fn::Length",
  ToJsonString: "Fn::ToJsonString",
};

const splitOnce = (s: string) => {
  const i = s.indexOf(".");
  return i < 0 ? [s] : [s.slice(0, i), s.slice(i + 1)];
};

const customTags = Object.entries(FUNCTIONS).flatMap(([short, long]) => [
  { tag: `!${short}`, resolve: (s: string) => ({ [long]: short === "GetAtt" ? splitOnce(s) : s }) },
  { tag: `!${short}`, collection: "seq" as const, resolve: (n: Any) => ({ [long]: n.toJSON() }) },
  { tag: `!${short}`, collection: "map" as const, resolve: (n: Any) => ({ [long]: n.toJSON() }) },
]);

/** parseTemplate reads a YAML (or JSON) template with CloudFormation's short-form tags. */
export function parseTemplate(text: string): { template: Any; errors: string[] } {
  const doc = parseDocument(text, { customTags: customTags as Any, prettyErrors: true });
  const errors = [...doc.errors, ...doc.warnings].map((e) => {
    const at = e.linePos ? ` line ${e.linePos[0].line}:${e.linePos[0].col}` : "";
    return `YAML${at}: ${(e.message.split("\n")[0] ?? "").replace(/ at line \d+, column \d+:?$/, "")}`;
  });
  return { template: errors.length > 0 ? undefined : doc.toJS(), errors };
}

let spec: Promise<Any> | undefined;
/** loadSpec loads the resource specification once per process (about half a second). */
export const loadSpec = (): Promise<Any> => {
  spec ??= loadAwsServiceSpec();
  return spec;
};

const PSEUDO = new Set([
  "AWS::AccountId",
  "AWS::NotificationARNs",
  "AWS::NoValue",
  "AWS::Partition",
  "AWS::Region",
  "AWS::StackId",
  "AWS::StackName",
  "AWS::URLSuffix",
]);
const TOP_KEYS = new Set([
  "AWSTemplateFormatVersion",
  "Description",
  "Metadata",
  "Parameters",
  "Rules",
  "Mappings",
  "Conditions",
  "Transform",
  "Resources",
  "Outputs",
  "Hooks",
]);
const RESOURCE_KEYS = new Set([
  "Type",
  "Properties",
  "DependsOn",
  "Condition",
  "Metadata",
  "DeletionPolicy",
  "UpdateReplacePolicy",
  "CreationPolicy",
  "UpdatePolicy",
]);

const isObj = (v: unknown): v is Record<string, Any> =>
  v !== null && typeof v === "object" && !Array.isArray(v);
const intrinsic = (v: unknown): string | undefined => {
  if (!isObj(v)) return undefined;
  const ks = Object.keys(v);
  return ks.length === 1 && (ks[0] === "Ref" || ks[0]?.startsWith("Fn::")) ? ks[0] : undefined;
};
const isCustom = (type: string) =>
  type.startsWith("Custom::") || type === "AWS::CloudFormation::CustomResource";
const subVars = (s: string) =>
  [...s.matchAll(/\$\{([^}]*)\}/g)]
    .map((m) => (m[1] ?? "").trim())
    .filter((n) => !n.startsWith("!"));

/** toPattern turns a literal, Sub, Join or Ref into a string with ${X} placeholders. */
function toPattern(v: Any): string | undefined {
  if (typeof v === "string") return v;
  switch (intrinsic(v)) {
    case "Ref":
      return typeof v.Ref === "string" ? `\${${v.Ref}}` : undefined;
    case "Fn::Sub": {
      const [str, vars = {}] = Array.isArray(v["Fn::Sub"]) ? v["Fn::Sub"] : [v["Fn::Sub"]];
      if (typeof str !== "string") return undefined;
      return str.replace(/\$\{([^}]*)\}/g, (m, n: string) => {
        if (n.startsWith("!")) return m;
        return n.trim() in vars ? (toPattern(vars[n.trim()]) ?? m) : m;
      });
    }
    case "Fn::Join": {
      const [sep, parts] = v["Fn::Join"] ?? [];
      if (typeof sep !== "string" || !Array.isArray(parts)) return undefined;
      const ps = parts.map(toPattern);
      return ps.every((p) => p !== undefined) ? ps.join(sep) : undefined;
    }
    default:
      return undefined;
  }
}

/** exportPatterns lists the export names a template's Outputs produce, as ${X} patterns. */
export function exportPatterns(textOrTemplate: string | Any): string[] {
  const t =
    typeof textOrTemplate === "string" ? parseTemplate(textOrTemplate).template : textOrTemplate;
  return Object.values(t?.Outputs ?? {})
    .map((o: Any) => toPattern(o?.Export?.Name))
    .filter((p): p is string => p !== undefined);
}

/** exportMatches says whether an export made from `pattern` can be the name `name`. */
export function exportMatches(pattern: string, name: string): boolean {
  const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(
    `^${pattern
      .split(/\$\{[^}]*\}/)
      .map(esc)
      .join("[^]+")}$`,
  );
  return re.test(name.replace(/\$\{[^}]*\}/g, "\u0000"));
}

/**
 * validateTemplate returns every problem found in a template (empty when none). `imports` are
 * the export-name patterns other stacks provide; without them ImportValue is not checked.
 */
export async function validateTemplate(
  text: string,
  opts: { imports?: string[] } = {},
): Promise<string[]> {
  const { template: t, errors } = parseTemplate(text);
  if (!t) return errors;
  if (!isObj(t)) return ["template is not a mapping"];
  const db = await loadSpec();
  const err = (path: string, msg: string) => {
    errors.push(`${path}: ${msg}`);
  };
  const params: Record<string, Any> = isObj(t.Parameters) ? t.Parameters : {};
  const resources: Record<string, Any> = isObj(t.Resources) ? t.Resources : {};
  const conditions: Record<string, Any> = isObj(t.Conditions) ? t.Conditions : {};
  const mappings: Record<string, Any> = isObj(t.Mappings) ? t.Mappings : {};
  const specOf = new Map<string, Any>();

  for (const k of Object.keys(t)) if (!TOP_KEYS.has(k)) err(k, "unknown top-level section");
  if (Object.keys(resources).length === 0) err("Resources", "template has no resources");
  for (const [id, p] of Object.entries(params))
    if (!isObj(p) || !p.Type) err(`Parameters.${id}`, "missing Type");

  const checkRef = (path: string, name: Any, label = `Ref ${name}`) => {
    if (typeof name !== "string") return;
    if (!(name in params) && !(name in resources) && !PSEUDO.has(name)) {
      err(path, `${label}: no such parameter, resource or pseudo parameter`);
    }
  };
  const checkGetAtt = (path: string, res: Any, attr: Any) => {
    const label = `GetAtt ${res}.${typeof attr === "string" ? attr : "<computed>"}`;
    if (typeof res !== "string") return;
    if (!(res in resources)) {
      err(path, `${label}: no such resource ${res}`);
      return;
    }
    const type = resources[res]?.Type;
    const s = specOf.get(res);
    if (typeof attr !== "string" || !s || s.cloudFormationTransform) return;
    if (type === "AWS::CloudFormation::Stack" && attr.startsWith("Outputs.")) return;
    if (!(attr in s.attributes)) err(path, `${label}: ${type} has no attribute ${attr}`);
  };
  const checkCondition = (path: string, name: Any) => {
    if (typeof name === "string" && !(name in conditions))
      err(path, `condition ${name} is not defined`);
  };
  const checkSub = (path: string, arg: Any) => {
    const [str, vars] = Array.isArray(arg) ? arg : [arg, {}];
    if (typeof str !== "string") {
      err(path, "Fn::Sub: first argument must be a string");
      return;
    }
    for (const name of subVars(str)) {
      if (isObj(vars) && name in vars) continue;
      const dot = name.indexOf(".");
      if (dot > 0 && !name.startsWith("AWS::"))
        checkGetAtt(path, name.slice(0, dot), name.slice(dot + 1));
      else checkRef(path, name, `Sub \${${name}}`);
    }
  };
  const checkImport = (path: string, arg: Any) => {
    if (!opts.imports) return;
    const name = toPattern(arg);
    if (name === undefined) return;
    if (!opts.imports.some((p) => exportMatches(p, name)))
      err(path, `ImportValue ${name}: no known export matches`);
  };

  const walk = (v: Any, path: string, inConditions = false): void => {
    if (Array.isArray(v)) {
      v.forEach((x, i) => {
        walk(x, `${path}[${i}]`, inConditions);
      });
      return;
    }
    if (!isObj(v)) return;
    const fn =
      intrinsic(v) ??
      (inConditions && Object.keys(v).length === 1 && "Condition" in v ? "Condition" : undefined);
    const arg = fn ? v[fn] : undefined;
    switch (fn) {
      case "Ref":
        checkRef(path, arg);
        break;
      case "Fn::GetAtt":
        if (Array.isArray(arg)) checkGetAtt(path, arg[0], arg.length === 2 ? arg[1] : undefined);
        else if (typeof arg === "string")
          checkGetAtt(path, ...(splitOnce(arg) as [string, string]));
        break;
      case "Fn::Sub":
        checkSub(path, arg);
        break;
      case "Fn::ImportValue":
        checkImport(path, arg);
        break;
      case "Fn::If":
        if (Array.isArray(arg)) checkCondition(path, arg[0]);
        break;
      case "Condition":
        checkCondition(path, arg);
        break;
      case "Fn::FindInMap":
        if (Array.isArray(arg) && typeof arg[0] === "string" && !(arg[0] in mappings)) {
          err(path, `FindInMap: no mapping ${arg[0]}`);
        }
        break;
    }
    for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`, inConditions);
  };

  const checkProps = (obj: Record<string, Any>, props: Record<string, Any>, path: string) => {
    for (const [k, x] of Object.entries(obj)) {
      if (!(k in props)) err(`${path}.${k}`, "unknown property");
      else checkValue(x, props[k].type, `${path}.${k}`);
    }
    for (const [k, p] of Object.entries(props)) {
      if (p.required && !(k in obj)) err(`${path}.${k}`, "required property missing");
    }
  };
  const typeErrors = (v: Any, type: Any, path: string) => {
    const saved = errors.length;
    checkValue(v, type, path);
    return errors.splice(saved);
  };
  const checkValue = (v: Any, type: Any, path: string): void => {
    const fn = intrinsic(v);
    if (fn === "Fn::If" && Array.isArray(v[fn])) {
      for (const branch of v[fn].slice(1)) {
        if (!(isObj(branch) && branch.Ref === "AWS::NoValue")) checkValue(branch, type, path);
      }
      return;
    }
    if (fn || v === null || v === undefined) return;
    switch (type.type) {
      case "ref":
        if (!isObj(v)) {
          err(path, "expected an object");
          return;
        }
        checkProps(v, db.get("typeDefinition", type.reference).properties, path);
        return;
      case "tag":
        if (!isObj(v)) {
          err(path, "expected a {Key, Value} tag");
          return;
        }
        checkProps(
          v,
          {
            Key: { required: true, type: { type: "string" } },
            Value: { required: true, type: { type: "string" } },
          },
          path,
        );
        return;
      case "array":
        if (!Array.isArray(v)) {
          err(path, "expected a list");
          return;
        }
        v.forEach((x, i) => {
          checkValue(x, type.element, `${path}[${i}]`);
        });
        return;
      case "map":
        if (!isObj(v)) {
          err(path, "expected a mapping");
          return;
        }
        for (const [k, x] of Object.entries(v)) checkValue(x, type.element, `${path}.${k}`);
        return;
      case "union": {
        const tries: string[][] = type.types.map((u: Any) => typeErrors(v, u, path));
        if (!tries.some((e) => e.length === 0)) {
          errors.push(...tries.reduce((a, b) => (b.length < a.length ? b : a)));
        }
        return;
      }
      case "json":
        return;
      default:
        if (typeof v === "object") err(path, `expected ${type.type}`);
    }
  };

  for (const [id, r] of Object.entries(resources)) {
    const path = `Resources.${id}`;
    if (!isObj(r)) {
      err(path, "resource must be a mapping");
      continue;
    }
    for (const k of Object.keys(r))
      if (!RESOURCE_KEYS.has(k)) err(`${path}.${k}`, "unknown resource attribute");
    if (typeof r.Type !== "string") {
      err(path, "missing Type");
      continue;
    }
    if (r.Condition !== undefined) checkCondition(`${path}.Condition`, r.Condition);
    for (const d of [r.DependsOn ?? []].flat()) {
      if (!(d in resources) || d === id)
        err(`${path}.DependsOn`, `${d} is not another resource in this template`);
    }
    if (isCustom(r.Type)) continue;
    const s = db.lookup("resource", "cloudFormationType", "equals", r.Type)[0];
    if (!s) {
      err(path, `unknown resource type ${r.Type}`);
      continue;
    }
    specOf.set(id, s);
  }
  for (const [id, r] of Object.entries(resources)) {
    const s = specOf.get(id);
    const path = `Resources.${id}.Properties`;
    if (!s || intrinsic(r.Properties)) continue;
    if (r.Properties !== undefined && !isObj(r.Properties)) err(path, "must be a mapping");
    else checkProps(r.Properties ?? {}, s.properties, path);
  }

  walk(t.Conditions, "Conditions", true);
  walk(t.Resources, "Resources");
  walk(t.Outputs, "Outputs");
  for (const [id, o] of Object.entries(isObj(t.Outputs) ? t.Outputs : {})) {
    if (!isObj(o) || !("Value" in o)) err(`Outputs.${id}`, "missing Value");
    else if (o.Condition !== undefined) checkCondition(`Outputs.${id}.Condition`, o.Condition);
  }
  return errors;
}
