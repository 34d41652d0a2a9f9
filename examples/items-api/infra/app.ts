#!/usr/bin/env node
/**
 * CDK entry point of the demo: `cdk synth|deploy -c env=dev|prod`, run from
 * `infra/` (whose cdk.json names this file), deploys the items API with agpat.
 * Prod also needs `-c account=… -c region=… -c alertEmail=…` (see settings.ts).
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { ItemsStack, settingsFromContext } from "./items-stack";

const app = new App();
const settings = settingsFromContext(app.node);
new ItemsStack(app, `agpat-${settings.deployment}`, { settings });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
