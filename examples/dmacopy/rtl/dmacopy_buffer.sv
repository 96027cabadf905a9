// dmacopy staging buffer: copy data between the read completions and the
// write requests. Byte i of the buffer holds the source byte whose bus
// address is i modulo the buffer size, so completion data goes in without
// byte shifting: one memory per DW lane, each written at most once a cycle
// (the DWs of one beat are consecutive, so they fall in distinct lanes).
// Two whole rows can be read at once for the write side's realignment.
module dmacopy_buffer #(
    parameter int LANES = 4,
    parameter int ROWS = 1024
) (
    input logic clk,

    input logic [LANES-1:0]                     wr_enable,  // per lane
    input logic [LANES-1:0][$clog2(ROWS)-1:0]   wr_row,
    input logic [LANES-1:0][31:0]               wr_data,

    input  logic [$clog2(ROWS)-1:0] rd_row,
    output logic [32*LANES-1:0]     rd_data,       // row rd_row
    output logic [32*LANES-1:0]     rd_data_next   // row rd_row + 1 (wrapping)
);

  logic [31:0] mem[LANES][ROWS];

  always_ff @(posedge clk) begin
    for (int m = 0; m < LANES; m++) if (wr_enable[m]) mem[m][wr_row[m]] <= wr_data[m];
  end

  wire [$clog2(ROWS)-1:0] rd_row_next = rd_row + 1'b1;
  always_comb begin
    for (int m = 0; m < LANES; m++) begin
      rd_data[32*m+:32] = mem[m][rd_row];
      rd_data_next[32*m+:32] = mem[m][rd_row_next];
    end
  end

endmodule
