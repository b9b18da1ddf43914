import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { exportPatterns, parseTemplate } from "../support/cloudformation.ts";
import { ROOT } from "../support/tools.ts";

/** COPILOT is the copilot/ directory. */
export const COPILOT = join(ROOT, "copilot");

/** SERVICES are the services that have a main.ts: each must be deployable. */
export const SERVICES = readdirSync(join(ROOT, "services"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && readdirSync(join(ROOT, "services", d.name)).includes("main.ts"))
  .map((d) => d.name)
  .filter((name) => name !== "region");

/** ENVIRONMENTS are the Copilot environments (one per region). */
export const ENVIRONMENTS = readdirSync(join(COPILOT, "environments"), { withFileTypes: true })
  .filter((d) => d.isDirectory() && !["addons", "overrides"].includes(d.name))
  .map((d) => d.name);

/** addonTemplates lists the CloudFormation templates of an addons directory. */
export function addonTemplates(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yml") && f !== "addons.parameters.yml")
    .map((f) => join(dir, f));
}

/** readYaml parses a plain YAML file (manifests). */
export function readYaml(path: string): Record<string, unknown> {
  return parse(readFileSync(path, "utf8"));
}

/** readTemplate parses a CloudFormation YAML template (with intrinsic tags). */
// biome-ignore lint/suspicious/noExplicitAny: templates are untyped
export function readTemplate(path: string): any {
  const { template, errors } = parseTemplate(readFileSync(path, "utf8"));
  if (errors.length > 0) throw new Error(`${path}: ${errors.join("; ")}`);
  return template;
}

/**
 * COPILOT_ENV_EXPORTS are the exports of Copilot's environment stack (named <app>-<env>) that
 * our templates may import (from Copilot's environment template, v1.34).
 */
export const COPILOT_ENV_EXPORTS = [
  "VpcId",
  "PublicSubnets",
  "PrivateSubnets",
  "EnvironmentSecurityGroup",
  "PublicLoadBalancerDNS",
  // Exported once the environment has its load balancer (a Load Balanced Web Service exists).
  "PublicLoadBalancerFullName",
  "CanonicalHostedZoneID",
  "ClusterId",
  "ServiceDiscoveryNamespaceID",
].map((name) => `\${App}-\${Env}-${name}`);

/** envAddonExports are the export patterns of our environment addons. */
export function envAddonExports(): string[] {
  return addonTemplates(join(COPILOT, "environments/addons")).flatMap((f) =>
    exportPatterns(readFileSync(f, "utf8")),
  );
}

/**
 * mergedAddons is an addons directory as Copilot deploys it: every template merged into one
 * nested stack (so a template may Ref a resource another one declares).
 */
// biome-ignore lint/suspicious/noExplicitAny: templates are untyped
export function mergedAddons(dir: string): any {
  // biome-ignore lint/suspicious/noExplicitAny: templates are untyped
  const merged: any = { AWSTemplateFormatVersion: "2010-09-09" };
  for (const file of addonTemplates(dir)) {
    const tpl = readTemplate(file);
    for (const section of [
      "Parameters",
      "Conditions",
      "Mappings",
      "Resources",
      "Outputs",
      "Rules",
    ]) {
      if (tpl[section]) merged[section] = { ...merged[section], ...tpl[section] };
    }
  }
  return merged;
}
