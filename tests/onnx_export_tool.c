/* onnx_export_tool: `kao export` (kao_cmd_export, src/cli/cmd_export.c) as its own program, for
 * tests/test_onnx_export.py; it runs whether or not the kao program lists the command. */
int kao_cmd_export(int argc, char **argv);

int main(int argc, char **argv) { return kao_cmd_export(argc, argv); }
