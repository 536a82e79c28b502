// Offline API reference: renders this server's /openapi.json without any CDN asset.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function schemaText(schema) {
  return JSON.stringify(schema, null, 2);
}

async function render() {
  const root = document.getElementById("api");
  const spec = await (await fetch("/openapi.json")).json();
  root.replaceChildren(el("h2", `${spec.info.title} ${spec.info.version}`), el("p", spec.info.description || ""));
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const section = el("section");
      section.append(el("h3", `${method.toUpperCase()} ${path}`), el("p", op.summary || op.description || ""));
      if (op.parameters && op.parameters.length) {
        const list = el("ul");
        for (const p of op.parameters) {
          list.append(el("li", `${p.name} (${p.in}${p.required ? ", required" : ""}): ${p.description || ""}`));
        }
        section.append(el("h4", "Parameters"), list);
      }
      if (op.requestBody) {
        section.append(el("h4", "Request body"));
        for (const [type, body] of Object.entries(op.requestBody.content)) {
          const details = el("details");
          details.append(el("summary", type), el("pre", schemaText(body.schema || {})));
          section.append(details);
        }
      }
      if (op.responses) {
        const list = el("ul");
        for (const [status, resp] of Object.entries(op.responses)) list.append(el("li", `${status}: ${resp.description}`));
        section.append(el("h4", "Responses"), list);
      }
      root.append(section);
    }
  }
}

render().catch((err) => {
  document.getElementById("api").textContent = `Could not load /openapi.json: ${err.message}`;
});
