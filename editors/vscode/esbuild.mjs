// Bundles the extension (vscode is provided by the editor) and, for `node --test`, the modules
// that do not import `vscode`.
import * as esbuild from "esbuild";

const common = { bundle: true, platform: "node", format: "cjs", target: "node20", sourcemap: false, logLevel: "warning" };

await esbuild.build({ ...common, entryPoints: ["src/extension.ts"], outfile: "out/extension.js", external: ["vscode"], minify: true });
await esbuild.build({
  ...common,
  entryPoints: ["src/protocol.ts", "src/binary.ts", "src/markdown.ts", "src/chatModel.ts", "src/settings.ts"],
  outdir: "out/lib",
});
