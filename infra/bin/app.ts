#!/usr/bin/env node
/** CDK entry point: `cdk synth|deploy -c env=dev|prod`. */
import { App, Aspects } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { AgpatStack, settingsFromContext } from "../lib/agpat-stack";

const app = new App();
const settings = settingsFromContext(app.node);
new AgpatStack(app, `agpat-${settings.env}`, { settings });
Aspects.of(app).add(new AwsSolutionsChecks({ verbose: true }));
