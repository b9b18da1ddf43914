/**
 * export-proto-deps writes the third-party contracts our protos depend on into `proto-deps/`,
 * taken from the pinned npm packages that implement them, so `buf` never needs the Buf Schema
 * Registry (unreachable from CI and from many build networks).
 *
 * - grpc/health/v1/health.proto, grpc/reflection/{v1,v1alpha}/reflection.proto are copied verbatim.
 * - buf/validate/validate.proto is printed from the file descriptor that @bufbuild/protovalidate
 *   validates with, so our annotations compile against exactly the rules the runtime enforces.
 *
 * Run with `npm run proto:deps`; the test suite fails when the committed copies drift.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  createRegistry,
  type DescExtension,
  type DescMessage,
  getExtension,
  isFieldSet,
  type Message,
  type Registry,
  ScalarType,
} from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import type {
  DescriptorProto,
  EnumDescriptorProto,
  FieldDescriptorProto,
  FileDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldDescriptorProtoSchema,
  FieldOptionsSchema,
  FileOptionsSchema,
} from "@bufbuild/protobuf/wkt";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const out = join(root, "proto-deps");

/** exportProtoDeps writes every third-party contract and returns the paths written. */
export async function exportProtoDeps(outDir = out): Promise<string[]> {
  const written: string[] = [];
  const copy = (pkg: string, from: string, to: string) => {
    const src = join(packageRoot(pkg), from);
    const dst = join(outDir, to);
    mkdirSync(dirname(dst), { recursive: true });
    copyFileSync(src, dst);
    written.push(to);
  };
  copy("grpc-health-check", "proto/health/v1/health.proto", "grpc/health/v1/health.proto");
  copy(
    "@grpc/reflection",
    "build/proto/grpc/reflection/v1/reflection.proto",
    "grpc/reflection/v1/reflection.proto",
  );
  copy(
    "@grpc/reflection",
    "build/proto/grpc/reflection/v1alpha/reflection.proto",
    "grpc/reflection/v1alpha/reflection.proto",
  );

  const pv = packageRoot("@bufbuild/protovalidate");
  const version = JSON.parse(readFileSync(join(pv, "package.json"), "utf8")).version as string;
  const gen = await import(join(pv, "dist/esm/gen/buf/validate/validate_pb.js"));
  const file = gen.file_buf_validate_validate;
  const text = printFile(file.proto, createRegistry(file), [
    "// Printed by scripts/export-proto-deps.ts from the descriptor embedded in",
    `// @bufbuild/protovalidate@${version}. Do not edit; run \`npm run proto:deps\`.`,
    "//",
    "// Copyright 2023-2025 Buf Technologies, Inc.",
    "// Licensed under the Apache License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0).",
    "// Comments are not part of the descriptor; see https://buf.build/bufbuild/protovalidate.",
  ]);
  const dst = join(outDir, "buf/validate/validate.proto");
  mkdirSync(dirname(dst), { recursive: true });
  writeFileSync(dst, text);
  written.push("buf/validate/validate.proto");
  return written;
}

function packageRoot(pkg: string): string {
  // Resolve through the package's own package.json location, not its exports map, because
  // the files we need (protos, generated descriptors) are not exported entry points.
  let dir = dirname(fileURLToPath(import.meta.resolve(pkg)));
  for (;;) {
    try {
      const json = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
      if (json.name === pkg) return dir;
    } catch {
      // not a package root yet
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the root of package ${pkg}`);
    dir = up;
  }
}

/** printFile renders a proto2/proto3 FileDescriptorProto as .proto source. */
export function printFile(fd: FileDescriptorProto, registry: Registry, header: string[]): string {
  const lines: string[] = [...header, ""];
  lines.push(`syntax = "${fd.syntax || "proto2"}";`, "", `package ${fd.package};`, "");
  for (const dep of fd.dependency) lines.push(`import "${dep}";`);
  lines.push("");
  if (fd.options) {
    for (const [name, value] of setFields(fd.options)) lines.push(`option ${name} = ${value};`);
    lines.push("");
  }
  const extendees = new Map<string, FieldDescriptorProto[]>();
  for (const ext of fd.extension) {
    const list = extendees.get(ext.extendee) ?? [];
    list.push(ext);
    extendees.set(ext.extendee, list);
  }
  for (const [extendee, fields] of extendees) {
    lines.push(`extend ${extendee} {`);
    for (const f of fields) lines.push(`  ${fieldLine(f, fd, registry, false)}`);
    lines.push("}", "");
  }
  for (const m of fd.messageType) lines.push(...printMessage(m, fd, registry, ""), "");
  for (const e of fd.enumType) lines.push(...printEnum(e, ""), "");
  while (lines.at(-1) === "") lines.pop();
  return `${lines.join("\n")}\n`;
}

function printMessage(
  m: DescriptorProto,
  fd: FileDescriptorProto,
  registry: Registry,
  indent: string,
): string[] {
  const i = `${indent}  `;
  const lines = [`${indent}message ${m.name} {`];
  if (m.reservedRange.length > 0) {
    lines.push(`${i}reserved ${m.reservedRange.map((r) => range(r.start, r.end)).join(", ")};`);
  }
  if (m.reservedName.length > 0) {
    lines.push(`${i}reserved ${m.reservedName.map((n) => JSON.stringify(n)).join(", ")};`);
  }
  if (m.extensionRange.length > 0) {
    lines.push(`${i}extensions ${m.extensionRange.map((r) => range(r.start, r.end)).join(", ")};`);
  }
  const printedOneofs = new Set<number>();
  const inOneof = (f: FieldDescriptorProto) =>
    isFieldSet(f, FieldDescriptorProtoSchema.field.oneofIndex) && !f.proto3Optional;
  for (const f of m.field) {
    if (!inOneof(f)) {
      lines.push(`${i}${fieldLine(f, fd, registry, false)}`);
      continue;
    }
    if (printedOneofs.has(f.oneofIndex)) continue;
    printedOneofs.add(f.oneofIndex);
    lines.push(`${i}oneof ${m.oneofDecl[f.oneofIndex]?.name} {`);
    for (const member of m.field.filter((x) => inOneof(x) && x.oneofIndex === f.oneofIndex)) {
      lines.push(`${i}  ${fieldLine(member, fd, registry, true)}`);
    }
    lines.push(`${i}}`);
  }
  for (const nested of m.nestedType) lines.push(...printMessage(nested, fd, registry, i));
  for (const e of m.enumType) lines.push(...printEnum(e, i));
  lines.push(`${indent}}`);
  return lines;
}

function printEnum(e: EnumDescriptorProto, indent: string): string[] {
  const lines = [`${indent}enum ${e.name} {`];
  if (e.reservedRange.length > 0) {
    // Enum reserved ranges are inclusive, unlike message ones.
    lines.push(
      `${indent}  reserved ${e.reservedRange.map((r) => range(r.start, r.end + 1)).join(", ")};`,
    );
  }
  if (e.reservedName.length > 0) {
    lines.push(`${indent}  reserved ${e.reservedName.map((n) => JSON.stringify(n)).join(", ")};`);
  }
  lines.push(...e.value.map((v) => `${indent}  ${v.name} = ${v.number};`), `${indent}}`);
  return lines;
}

function range(start: number, endExclusive: number): string {
  const maxField = 536870912;
  if (endExclusive === maxField) return `${start} to max`;
  return endExclusive - 1 === start ? `${start}` : `${start} to ${endExclusive - 1}`;
}

function fieldLine(
  f: FieldDescriptorProto,
  fd: FileDescriptorProto,
  registry: Registry,
  noLabel: boolean,
): string {
  const label =
    noLabel && f.label !== FieldDescriptorProto_Label.REPEATED
      ? ""
      : f.label === FieldDescriptorProto_Label.REPEATED
        ? "repeated "
        : f.label === FieldDescriptorProto_Label.REQUIRED
          ? "required "
          : fd.syntax === "proto3" && !f.proto3Optional
            ? ""
            : "optional ";
  const type = f.typeName ? f.typeName : scalarName(f.type);
  const options: string[] = [];
  if (f.jsonName && f.jsonName !== defaultJsonName(f.name) && !f.extendee) {
    options.push(`json_name = ${JSON.stringify(f.jsonName)}`);
  }
  if (f.options) {
    for (const [name, value] of setFields(f.options)) options.push(`${name} = ${value}`);
    for (const [name, value] of extensionOptions(f.options, registry)) {
      options.push(`${name} = ${value}`);
    }
  }
  const opts = options.length > 0 ? ` [\n      ${options.join(",\n      ")}\n    ]` : "";
  return `${label}${type} ${f.name} = ${f.number}${opts};`;
}

function defaultJsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/_/g, "");
}

function scalarName(t: FieldDescriptorProto_Type): string {
  const name = FieldDescriptorProto_Type[t];
  if (name === undefined) throw new Error(`unknown field type ${t}`);
  return name.toLowerCase();
}

/** setFields yields `name = value` pairs for the regular fields set on an options message. */
function* setFields(options: Message): Generator<[string, string]> {
  const schema =
    options.$typeName === FileOptionsSchema.typeName ? FileOptionsSchema : FieldOptionsSchema;
  const r = reflect(schema, options as never);
  for (const field of r.fields) {
    if (!r.isSet(field)) continue;
    if (field.fieldKind !== "scalar" && field.fieldKind !== "enum") {
      throw new Error(`option ${field.name} of kind ${field.fieldKind} is not supported`);
    }
    yield [field.name, textValue(field, r.get(field))];
  }
}

/** extensionOptions yields `(ext).path = value` pairs for custom options stored as unknown fields. */
function* extensionOptions(options: Message, registry: Registry): Generator<[string, string]> {
  const numbers = new Set((options.$unknown ?? []).map((u) => u.no));
  for (const no of numbers) {
    const extendee =
      options.$typeName === FileOptionsSchema.typeName ? FileOptionsSchema : FieldOptionsSchema;
    const ext = registry.getExtensionFor(extendee, no) as DescExtension | undefined;
    if (!ext) throw new Error(`unknown extension ${no} on ${options.$typeName}`);
    // biome-ignore lint/suspicious/noExplicitAny: the extension's type is only known at run time
    const value = getExtension(options as any, ext as any) as Message;
    const msg = reflect(ext.message as DescMessage, value as never);
    for (const field of msg.fields) {
      if (!msg.isSet(field)) continue;
      const name = `(${ext.typeName}).${field.name}`;
      const v = msg.get(field) as unknown;
      if (field.fieldKind === "list") {
        for (const item of v as Iterable<unknown>) yield [name, textValue(field, item)];
      } else {
        yield [name, textValue(field, v)];
      }
    }
  }
}

// biome-ignore lint/suspicious/noExplicitAny: reflection values are untyped by nature
function textValue(field: any, value: any): string {
  if (value && typeof value === "object" && "desc" in value && "fields" in value) {
    const parts: string[] = [];
    for (const f of value.fields) {
      if (!value.isSet(f)) continue;
      const v = value.get(f);
      if (f.fieldKind === "list")
        for (const item of v) parts.push(`${f.name}: ${textValue(f, item)}`);
      else parts.push(`${f.name}: ${textValue(f, v)}`);
    }
    return `{${parts.join(" ")}}`;
  }
  if (field.enum && typeof value === "number") {
    const v = field.enum.values.find((x: { number: number }) => x.number === value);
    return v ? v.name : String(value);
  }
  if (field.scalar === ScalarType.STRING) return quote(value as string);
  if (field.scalar === ScalarType.BYTES) throw new Error("bytes options are not supported");
  return String(value);
}

function quote(s: string): string {
  let r = '"';
  for (const ch of s) {
    switch (ch) {
      case "\\":
        r += "\\\\";
        break;
      case '"':
        r += '\\"';
        break;
      case "\n":
        r += "\\n";
        break;
      case "\r":
        r += "\\r";
        break;
      case "\t":
        r += "\\t";
        break;
      default:
        r += ch;
    }
  }
  return `${r}"`;
}

if (import.meta.main) {
  for (const p of await exportProtoDeps()) console.log(`proto-deps/${p}`);
}
