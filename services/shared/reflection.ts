import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import type { GenService } from "@bufbuild/protobuf/codegenv2";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection as ReflectionV1,
  type ServerReflectionRequest,
  type ServerReflectionResponse,
  ServerReflectionResponseSchema,
} from "../../gen/grpc/reflection/v1/reflection_pb.ts";
import {
  ServerReflection as ReflectionV1alpha,
  ServerReflectionResponseSchema as ServerReflectionResponseSchemaV1alpha,
} from "../../gen/grpc/reflection/v1alpha/reflection_pb.ts";

type AnyService = GenService<never> | { typeName: string; file: DescFile };

/**
 * registerReflection serves gRPC server reflection (grpc.reflection.v1 and v1alpha) for the
 * given services, so grpcurl and `buf curl` can list and call them without proto files.
 * Each answer carries the requested file and the dependencies not yet sent on the stream.
 */
export function registerReflection(router: ConnectRouter, services: AnyService[]): void {
  const all = [...services, ReflectionV1, ReflectionV1alpha];
  const files = new Map<string, DescFile>();
  const symbols = new Map<string, DescFile>();
  const extensions = new Map<string, Map<number, DescFile>>();
  const addFile = (file: DescFile) => {
    if (files.has(file.name)) return;
    files.set(file.name, file);
    for (const dep of file.dependencies) addFile(dep);
    for (const s of file.services) {
      symbols.set(s.typeName, file);
      for (const m of s.methods) symbols.set(`${s.typeName}.${m.name}`, file);
    }
    const addMessages = (msgs: DescFile["messages"]) => {
      for (const m of msgs) {
        symbols.set(m.typeName, file);
        for (const f of m.fields) symbols.set(`${m.typeName}.${f.name}`, file);
        for (const e of m.nestedEnums) symbols.set(e.typeName, file);
        for (const x of m.nestedExtensions) addExtension(x);
        addMessages(m.nestedMessages);
      }
    };
    const addExtension = (x: DescFile["extensions"][number]) => {
      symbols.set(x.typeName, file);
      const byNumber = extensions.get(x.extendee.typeName) ?? new Map<number, DescFile>();
      byNumber.set(x.number, file);
      extensions.set(x.extendee.typeName, byNumber);
    };
    addMessages(file.messages);
    for (const e of file.enums) symbols.set(e.typeName, file);
    for (const x of file.extensions) addExtension(x);
  };
  for (const s of all) addFile(s.file);
  const serviceNames = all.map((s) => s.typeName);

  const answer = (req: ServerReflectionRequest, sent: Set<string>) => {
    const descriptors = (file: DescFile) => {
      const out: Uint8Array[] = [];
      const visit = (f: DescFile, requested: boolean) => {
        if (sent.has(f.name) && !requested) return;
        sent.add(f.name);
        out.push(toBinary(FileDescriptorProtoSchema, f.proto));
        for (const d of f.dependencies) visit(d, false);
      };
      visit(file, true);
      return {
        case: "fileDescriptorResponse" as const,
        value: { fileDescriptorProto: out },
      };
    };
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: { errorCode: 5, errorMessage: `${what} not found` },
    });
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return {
          case: "listServicesResponse" as const,
          value: { service: serviceNames.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const f = files.get(r.value);
        return f ? descriptors(f) : notFound(`file ${r.value}`);
      }
      case "fileContainingSymbol": {
        const f = symbols.get(r.value.replace(/^\./, ""));
        return f ? descriptors(f) : notFound(`symbol ${r.value}`);
      }
      case "fileContainingExtension": {
        const f = extensions.get(r.value.containingType)?.get(r.value.extensionNumber);
        return f
          ? descriptors(f)
          : notFound(`extension ${r.value.extensionNumber} of ${r.value.containingType}`);
      }
      case "allExtensionNumbersOfType": {
        const byNumber = extensions.get(r.value);
        if (!byNumber && !symbols.has(r.value)) return notFound(`type ${r.value}`);
        return {
          case: "allExtensionNumbersResponse" as const,
          value: { baseTypeName: r.value, extensionNumber: [...(byNumber?.keys() ?? [])] },
        };
      }
      default:
        return {
          case: "errorResponse" as const,
          value: { errorCode: 12, errorMessage: "unsupported reflection request" },
        };
    }
  };

  const impl = (schema: typeof ServerReflectionResponseSchema) =>
    async function* (requests: AsyncIterable<ServerReflectionRequest>) {
      const sent = new Set<string>();
      for await (const req of requests) {
        yield create(schema, {
          validHost: req.host,
          originalRequest: req,
          messageResponse: answer(req, sent),
        }) as ServerReflectionResponse;
      }
    };
  router.service(ReflectionV1, { serverReflectionInfo: impl(ServerReflectionResponseSchema) });
  router.service(ReflectionV1alpha, {
    // v1alpha has the same shape under another package name.
    serverReflectionInfo: impl(
      ServerReflectionResponseSchemaV1alpha as unknown as typeof ServerReflectionResponseSchema,
    ) as never,
  });
}
