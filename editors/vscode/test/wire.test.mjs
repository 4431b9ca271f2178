// Checks the records of src/protocol.ts against schema/wire.json, the JSON Schema the server
// generates from its Rust types (`NOCTUNE_BLESS=1 cargo test --test it wire_` writes it; the
// same Rust test fails when it is stale). For each mirrored record: every field exists in the
// schema and every schema property is mirrored (or listed below as left out on purpose), a
// non-optional field is required, `| null` is there exactly when the schema allows null, types
// agree, and string-literal unions are exactly the schema's enum values.
// Reads the TypeScript source, so it needs neither a build nor the binary.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const wire = JSON.parse(fs.readFileSync(path.join(here, "../schema/wire.json"), "utf8"));
const source = fs.readFileSync(path.join(here, "../src/protocol.ts"), "utf8");

/** TypeScript interface → the wire.json definition it mirrors. */
const MIRRORS = {
  RunRecord: { def: "RunRecord", omitted: ["worker_start_time", "summary"] },
  RunEvent: { def: "Event" },
  ApprovalDecision: { def: "ApprovalDecision" },
  // The language server adds where the approval is in the workspace.
  ApprovalItem: { def: "ApprovalView", extra: ["run_id", "pack", "uri", "line"] },
};

/** `export interface Name { field?: type; ... }` of a TypeScript source, members by name. */
function interfaces(src) {
  const code = src.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const out = {};
  const re = /export interface (\w+)\s*\{/g;
  let m;
  while ((m = re.exec(code))) {
    let depth = 1;
    let i = re.lastIndex;
    const start = i;
    while (depth > 0 && i < code.length) {
      if (code[i] === "{") depth++;
      else if (code[i] === "}") depth--;
      i++;
    }
    const body = code.slice(start, i - 1);
    const members = [];
    let d = 0;
    let cur = "";
    for (const ch of body) {
      if (ch === "{") d++;
      if (ch === "}") d--;
      if ((ch === ";" || ch === "\n") && d === 0) {
        if (cur.trim()) members.push(cur.trim());
        cur = "";
      } else cur += ch;
    }
    if (cur.trim()) members.push(cur.trim());
    out[m[1]] = Object.fromEntries(
      members.map((s) => {
        const f = /^(\w+)(\?)?\s*:\s*([\s\S]+)$/.exec(s);
        assert.ok(f, `cannot read member ${JSON.stringify(s)} of ${m[1]}`);
        return [f[1], { optional: !!f[2], type: f[3].trim() }];
      }),
    );
  }
  return out;
}

/** A TypeScript type as sets: string literals, primitives, interfaces, null. */
function tsKinds(type) {
  const k = { literals: new Set(), prims: new Set(), names: new Set(), nullable: false, unknown: false };
  let depth = 0;
  let cur = "";
  const parts = [];
  for (const ch of type) {
    if ("{<(".includes(ch)) depth++;
    if ("}>)".includes(ch)) depth--;
    if (ch === "|" && depth === 0) {
      parts.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  parts.push(cur.trim());
  for (const p of parts.filter(Boolean)) {
    const lit = /^"([^"]*)"$/.exec(p);
    if (lit) k.literals.add(lit[1]);
    else if (p === "null") k.nullable = true;
    else if (p === "unknown" || p === "any") k.unknown = true;
    else if (["string", "number", "boolean"].includes(p)) k.prims.add(p);
    else k.names.add(p);
  }
  return k;
}

function resolve(schema) {
  if (schema && typeof schema === "object" && typeof schema.$ref === "string") {
    const name = schema.$ref.replace(/^#\/\$defs\//, "");
    assert.ok(wire.$defs[name], `unresolved $ref ${schema.$ref}`);
    return { ...resolve(wire.$defs[name]), ref: name };
  }
  return schema;
}

/** A schema as sets: JSON types, enum values (null: not an enum), the definition it names. */
function schemaKinds(schema) {
  const s = resolve(schema);
  const k = { types: new Set(), values: null, refs: new Set(), any: false };
  if (s === true || (typeof s === "object" && Object.keys(s).filter((x) => !["description", "ref", "title", "default"].includes(x)).length === 0)) {
    k.any = true;
    return k;
  }
  if (s.ref) k.refs.add(s.ref);
  const alts = s.anyOf ?? s.oneOf;
  if (alts) {
    for (const a of alts) {
      const ak = schemaKinds(a);
      ak.types.forEach((t) => k.types.add(t));
      ak.refs.forEach((r) => k.refs.add(r));
      k.any ||= ak.any;
      if (ak.values) k.values = new Set([...(k.values ?? []), ...ak.values]);
    }
  }
  if (s.type) [].concat(s.type).forEach((t) => k.types.add(t));
  if (s.enum) k.values = new Set([...(k.values ?? []), ...s.enum]);
  if ("const" in s) k.values = new Set([...(k.values ?? []), s.const]);
  if (k.values) [...k.values].forEach((v) => k.types.add(v === null ? "null" : typeof v));
  return k;
}

/**
 * The properties of an object definition. With alternatives (`oneOf`/`anyOf`, as the events
 * have one per type), their properties are merged in: a property is required when the object
 * itself or every alternative requires it.
 */
function objectOf(def) {
  const s = resolve(def);
  const properties = { ...(s.properties ?? {}) };
  let required = [...(s.required ?? [])];
  const alts = s.oneOf ?? s.anyOf;
  if (alts) {
    const parts = alts.map(objectOf);
    for (const p of parts) {
      for (const [name, schema] of Object.entries(p.properties)) {
        properties[name] = properties[name] ? { anyOf: [properties[name], schema] } : schema;
      }
    }
    const inAll = parts.map((p) => p.required).reduce((a, b) => a.filter((x) => b.includes(x)));
    required = [...new Set([...required, ...inAll])];
  }
  return { properties, required };
}

const JSON_OF = { string: ["string"], number: ["integer", "number"], boolean: ["boolean"] };

function checkField(iface, field, ts, schema) {
  const where = `${iface}.${field}`;
  const t = tsKinds(ts.type);
  const s = schemaKinds(schema);
  if (t.unknown || s.any) return;
  assert.equal(t.nullable, s.types.has("null"), `${where}: "| null" in protocol.ts must match the schema (${[...s.types]})`);
  if (t.literals.size > 0) {
    assert.ok(s.values, `${where}: protocol.ts lists values, the schema has no enum`);
    assert.deepEqual(
      [...t.literals].sort(),
      [...s.values].filter((v) => v !== null).sort(),
      `${where}: the values in protocol.ts differ from the schema's`,
    );
  }
  for (const p of t.prims) {
    assert.ok(JSON_OF[p].some((j) => s.types.has(j)), `${where}: ${p} in protocol.ts, ${[...s.types]} in the schema`);
  }
  for (const n of t.names) {
    const mirror = MIRRORS[n];
    assert.ok(mirror, `${where}: ${n} is not a mirrored record`);
    assert.ok(s.refs.has(mirror.def), `${where}: ${n} in protocol.ts, the schema has ${[...s.refs]}`);
  }
  // Nothing the schema allows is missing from the TypeScript type.
  for (const j of s.types) {
    if (j === "null") continue;
    const covered =
      (j === "string" && (t.prims.has("string") || t.literals.size > 0)) ||
      ((j === "integer" || j === "number") && t.prims.has("number")) ||
      (j === "boolean" && t.prims.has("boolean")) ||
      (j === "object" && t.names.size > 0);
    assert.ok(covered, `${where}: the schema allows ${j}, protocol.ts (${ts.type}) does not`);
  }
}

test("the interface reader reads members, optional ones and unions", () => {
  const got = interfaces('export interface A {\n  a: string;\n  b?: "x" | "y" | null; // c\n  c: { d: number; e: string };\n}\n');
  assert.deepEqual(Object.keys(got.A), ["a", "b", "c"]);
  assert.equal(got.A.b.optional, true);
  assert.deepEqual([...tsKinds(got.A.b.type).literals], ["x", "y"]);
  assert.equal(tsKinds(got.A.b.type).nullable, true);
});

test("a mismatch is caught", () => {
  const status = { $ref: "#/$defs/RunStatus" };
  assert.throws(() => checkField("T", "status", { type: '"queued" | "running"' }, status), /values in protocol.ts differ/);
  assert.throws(() => checkField("T", "ended_at", { type: "string" }, { type: ["string", "null"] }), /null/);
  assert.throws(() => checkField("T", "n", { type: "string" }, { type: "integer" }), /string in protocol.ts/);
});

test("protocol.ts mirrors the records of wire.json", () => {
  assert.equal(wire.$schema, "https://json-schema.org/draft/2020-12/schema");
  const ifaces = interfaces(source);
  for (const [name, m] of Object.entries(MIRRORS)) {
    const ts = ifaces[name];
    assert.ok(ts, `protocol.ts has no interface ${name}`);
    assert.ok(wire.$defs[m.def], `wire.json has no ${m.def}`);
    const { properties, required } = objectOf(wire.$defs[m.def]);
    for (const [field, f] of Object.entries(ts)) {
      if ((m.extra ?? []).includes(field)) continue;
      assert.ok(properties[field], `${name}.${field} is not in wire.json's ${m.def} (${Object.keys(properties)})`);
      if (!f.optional) assert.ok(required.includes(field), `${name}.${field} is not optional, but ${m.def} does not require it`);
      checkField(name, field, f, properties[field]);
    }
    for (const field of Object.keys(properties)) {
      assert.ok(
        field in ts || (m.omitted ?? []).includes(field),
        `wire.json's ${m.def} has ${field}; add it to ${name} in protocol.ts (or to the omitted list of this test)`,
      );
    }
  }
});

test("RunEventTypes are the event types of wire.json, in order", () => {
  const list = source.match(/export const RunEventTypes = \[([^\]]*)\] as const/);
  assert.ok(list, "protocol.ts has no RunEventTypes");
  const ts = [...list[1].matchAll(/"([^"]*)"/g)].map((m) => m[1]);
  const event = resolve(wire.$defs.Event);
  const types = (event.oneOf ?? event.anyOf ?? []).map((alt) => resolve(alt).properties?.type?.const);
  assert.ok(types.length > 0 && types.every((t) => typeof t === "string"), "wire.json's Event has no typed alternatives");
  assert.deepEqual(ts, types);
});

test("the keys a run result must have are RunRecord's required fields", () => {
  const keys = source.match(/\[Methods\.runsStart\]: \[([^\]]*)\]/);
  assert.ok(keys, "ResultKeys has no runsStart entry");
  const { required } = objectOf(wire.$defs.RunRecord);
  for (const k of keys[1].split(",").map((s) => s.trim().replace(/"/g, ""))) {
    assert.ok(required.includes(k), `ResultKeys[runsStart] has ${k}, which RunRecord does not require`);
  }
});
