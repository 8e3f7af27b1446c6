// Strimzi custom resources (JSON lines on stdin) against validators generated from Strimzi's
// published CRDs (npm @kubernetes-models/strimzi-kafka-operator): types, enums, required fields.
// Prints one line per problem; exit status 1 when there is any.
import { createInterface } from "node:readline";

const models = process.argv[2];
const byVersion = {};
for (const version of ["v1beta2", "v1"]) {
  byVersion[`kafka.strimzi.io/${version}`] = await import(`${models}/kafka.strimzi.io/${version}/index.js`);
}
let problems = 0;
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const doc = JSON.parse(line);
  const Model = byVersion[doc.apiVersion]?.[doc.kind];
  const name = `${doc.kind}/${doc.metadata?.name}`;
  if (!Model) {
    console.log(`${name}: no published schema for ${doc.apiVersion}`);
    problems++;
    continue;
  }
  try {
    new Model(doc).validate();
  } catch (error) {
    console.log(`${name}: ${error.message}`);
    problems++;
  }
}
process.exit(problems ? 1 : 0);
