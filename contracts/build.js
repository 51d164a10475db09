// Compile the contracts with solc-js (`solcjs --standard-json`) and write one artifact per
// contract (ABI + bytecode) to ../src/chainbook/chain/artifacts, or to --out DIR.
// The output is deterministic: same sources and compiler => byte-identical files.
"use strict";

const { execFileSync } = require("child_process");
const fs = require("fs");
const path = require("path");

const SOURCES = ["Settlement.sol", "TestToken.sol"];
const EVM_VERSION = "prague"; // 0.8.37 defaults to osaka, which py-evm cannot run
const RUNS = 200;

function parseArgs(argv) {
  let out = path.join(__dirname, "..", "src", "chainbook", "chain", "artifacts");
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out" && i + 1 < argv.length) out = argv[++i];
    else throw new Error(`unknown argument ${argv[i]} (usage: node build.js [--out DIR])`);
  }
  return { out };
}

function compile() {
  const sources = {};
  for (const name of SOURCES) {
    sources[name] = { content: fs.readFileSync(path.join(__dirname, name), "utf8") };
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      evmVersion: EVM_VERSION,
      optimizer: { enabled: true, runs: RUNS },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
    },
  };
  const solcjs = path.join(__dirname, "node_modules", ".bin", "solcjs");
  const raw = execFileSync(solcjs, ["--standard-json"], {
    input: JSON.stringify(input),
    maxBuffer: 64 * 1024 * 1024,
  });
  const text = raw.toString("utf8");
  const output = JSON.parse(text.slice(text.indexOf("{")));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage || e.message);
  if (errors.length) throw new Error(`compilation failed with ${errors.length} error(s)`);
  return output;
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const version = require("solc/package.json").version;
  const output = compile();
  fs.mkdirSync(out, { recursive: true });
  for (const file of SOURCES) {
    for (const [name, c] of Object.entries(output.contracts[file])) {
      const artifact = {
        contractName: name,
        sourceName: file,
        compiler: { name: "solc-js", version, evmVersion: EVM_VERSION, optimizerRuns: RUNS },
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      };
      fs.writeFileSync(path.join(out, `${name}.json`), JSON.stringify(artifact, null, 2) + "\n");
    }
  }
}

main();
