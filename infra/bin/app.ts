#!/usr/bin/env node
/** CDK entry point: `cdk synth|deploy -c env=dev|prod` deploys the demo items API with agpat. */
import { App, Aspects } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { ItemsStack, settingsFromContext } from "../../examples/items-api/infra/items-stack";

const app = new App();
const settings = settingsFromContext(app.node);
new ItemsStack(app, `agpat-${settings.env}`, { settings });
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
