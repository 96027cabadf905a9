// dmacopy: constants, PCIe TLP header helpers and the CRC-32 step shared by
// the modules of the RTL implementation. Register and descriptor semantics
// are those of the device specification (docs/rtl-guide.md points to it);
// the C model in ../hlsim/dmacopy.c is the reference for every register
// reading.
//
// TLP format on the streams (docs/rtl-interface.md): header DWs are 32-bit
// values numbered as in the PCIe specification's figures (DW0[31:29] = Fmt),
// payload DWs carry the byte at the lowest address in bits [7:0].
package dmacopy_pkg;

  localparam logic [31:0] DMACOPY_ID = 32'h7A11_0001;

  // BAR0 register offsets, as DW indices (byte offset / 4)
  localparam logic [9:0] REG_ID = 10'h000;
  localparam logic [9:0] REG_SCRATCH = 10'h001;
  localparam logic [9:0] REG_CTRL = 10'h002;
  localparam logic [9:0] REG_STATUS = 10'h003;
  localparam logic [9:0] REG_RING_LO = 10'h004;
  localparam logic [9:0] REG_RING_HI = 10'h005;
  localparam logic [9:0] REG_RING_SIZE = 10'h006;
  localparam logic [9:0] REG_HEAD = 10'h007;
  localparam logic [9:0] REG_TAIL = 10'h008;
  localparam logic [9:0] REG_IRQ_STATUS = 10'h009;
  localparam logic [9:0] REG_IRQ_MASK = 10'h00A;
  localparam logic [9:0] REG_COMPLETED = 10'h00B;
  localparam logic [9:0] REG_ERR_CODE = 10'h00C;

  localparam logic [7:0] ERR_NONE = 8'd0;
  localparam logic [7:0] ERR_BAD_LENGTH = 8'd1;
  localparam logic [7:0] ERR_DMA_READ = 8'd2;
  localparam logic [7:0] ERR_DMA_WRITE = 8'd3;
  localparam logic [7:0] ERR_BAD_RING = 8'd4;

  localparam logic [10:0] MSIX_VECTOR_COMPLETION = 11'd0;
  localparam logic [10:0] MSIX_VECTOR_ERROR = 11'd1;

  localparam logic [31:0] MAX_COPY_BYTES = 32'h0010_0000;  // 1 MiB
  localparam logic [31:0] MAX_RING_SIZE = 32'd4096;

  // Fmt and Type
  localparam logic [2:0] FMT_3DW = 3'b000;
  localparam logic [2:0] FMT_4DW = 3'b001;
  localparam logic [2:0] FMT_3DW_DATA = 3'b010;
  localparam logic [2:0] FMT_4DW_DATA = 3'b011;
  localparam logic [4:0] TYPE_MEM = 5'b00000;
  localparam logic [4:0] TYPE_CPL = 5'b01010;

  localparam logic [2:0] CPL_SC = 3'b000;
  localparam logic [2:0] CPL_UR = 3'b001;

  // What the TLP emitter puts after the header.
  typedef enum logic [1:0] {
    PAY_NONE = 2'd0,  // header only (MRd, Cpl)
    PAY_WORD = 2'd1,  // one DW given with the job (descriptor crc/status writes)
    PAY_BUF = 2'd2,   // copy data from the staging buffer, realigned
    PAY_REGS = 2'd3   // register values (completion of a BAR read)
  } payload_kind_t;

  // One TLP for the emitter. Widths are the largest any configuration needs.
  typedef struct packed {
    logic [31:0] hdr0;
    logic [31:0] hdr1;
    logic [31:0] hdr2;
    logic [31:0] hdr3;
    logic        hdr_4dw;     // header is 4 DWs, else 3
    logic [10:0] payload_dw;  // 0..1024
    payload_kind_t payload;
    logic [31:0] word;        // PAY_WORD
    // PAY_BUF: stream byte q of the TLP comes from staging-buffer byte
    // (buf_offset + q); bytes [crc_first, crc_end) of the stream are copy
    // data and go into the CRC.
    logic [15:0] buf_offset;
    logic [12:0] crc_first;
    logic [12:0] crc_end;
    // PAY_REGS: first register (DW index), byte enables, and whether the
    // read hit BAR0 (other BARs read as zero)
    logic [9:0]  reg_dw;
    logic [3:0]  first_be;
    logic [3:0]  last_be;
    logic        reg_bar0;
  } tlp_job_t;

  // The helpers below take whole PCIe fields and use the bits the header
  // encodes (e.g. Length 1024 as 0, DW-aligned addresses).
  /* verilator lint_off UNUSEDSIGNAL */

  // DW0 of a TLP.
  function automatic logic [31:0] tlp_dw0(input logic [2:0] fmt, input logic [4:0] ttype,
                                          input logic [2:0] tc, input logic [1:0] attr,
                                          input logic [10:0] length_dw);
    // Length 1024 is encoded as 0.
    return {fmt, ttype, 1'b0, tc, 4'b0000, 1'b0, 1'b0, attr, 2'b00, length_dw[9:0]};
  endfunction

  // Length field of a header (0 means 1024).
  function automatic logic [10:0] tlp_length(input logic [31:0] dw0);
    return (dw0[9:0] == 10'd0) ? 11'd1024 : {1'b0, dw0[9:0]};
  endfunction

  // A memory request: DW0..DW3. The 4DW form only at or above 4 GiB, as
  // PCIe requires.
  function automatic tlp_job_t mem_request(input logic is_write, input logic [15:0] requester_id,
                                           input logic [7:0] tag, input logic [63:0] dw_address,
                                           input logic [10:0] length_dw, input logic [3:0] first_be,
                                           input logic [3:0] last_be);
    tlp_job_t job;
    logic four = dw_address[63:32] != 32'd0;
    job = '0;
    job.hdr_4dw = four;
    job.hdr0 = tlp_dw0(four ? (is_write ? FMT_4DW_DATA : FMT_4DW) : (is_write ? FMT_3DW_DATA : FMT_3DW),
                       TYPE_MEM, 3'd0, 2'd0, length_dw);
    job.hdr1 = {requester_id, tag, last_be, first_be};
    job.hdr2 = four ? dw_address[63:32] : {dw_address[31:2], 2'b00};
    job.hdr3 = four ? {dw_address[31:2], 2'b00} : 32'd0;
    job.payload_dw = is_write ? length_dw : 11'd0;
    job.payload = PAY_NONE;
    return job;
  endfunction

  // Byte enables of the first and last DW of [addr, addr + bytes), bytes >= 1.
  function automatic logic [3:0] first_be_of(input logic [1:0] addr_lo, input logic [12:0] bytes);
    logic [3:0] from = 4'b1111 << addr_lo;
    logic [4:0] end_in_dw = {3'd0, addr_lo} + ((bytes > 13'd4) ? 5'd4 : bytes[4:0]);
    logic [3:0] upto = (end_in_dw >= 5'd4) ? 4'b1111 : ~(4'b1111 << end_in_dw[1:0]);
    return from & upto;
  endfunction

  function automatic logic [3:0] last_be_of(input logic [1:0] addr_lo, input logic [12:0] bytes,
                                            input logic [10:0] length_dw);
    logic [1:0] end_lo = 2'(addr_lo + bytes[1:0]);  // (addr + bytes) mod 4
    if (length_dw == 11'd1) return 4'b0000;
    return (end_lo == 2'd0) ? 4'b1111 : ~(4'b1111 << end_lo);
  endfunction

  // DWs covering [addr, addr + bytes).
  function automatic logic [10:0] dw_count(input logic [1:0] addr_lo, input logic [12:0] bytes);
    logic [13:0] span = {12'd0, addr_lo} + {1'b0, bytes} + 14'd3;
    return span[12:2];
  endfunction

  /* verilator lint_on UNUSEDSIGNAL */

  // CRC-32 (IEEE 802.3, reflected, as zlib's crc32) over the bytes of data
  // whose bit in mask is set, lowest byte first. crc is the running register
  // (initial all-ones, final value inverted).
  function automatic logic [31:0] crc32_update(input logic [31:0] crc, input logic [127:0] data,
                                               input logic [15:0] mask);
    logic [31:0] c = crc;
    for (int b = 0; b < 16; b++) begin
      if (mask[b]) begin
        c = c ^ {24'd0, data[8*b+:8]};
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (32'hEDB8_8320 & {32{c[0]}});
      end
    end
    return c;
  endfunction

endpackage
