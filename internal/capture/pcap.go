package capture

import (
	"encoding/binary"
	"fmt"
	"io"
)

// PcapWriter writes frames in the classic pcap format (microsecond
// timestamps, link type Ethernet), which tcpdump -r and Wireshark read.
type PcapWriter struct {
	w io.Writer
}

const (
	pcapMagic        = 0xa1b2c3d4
	linkTypeEthernet = 1
)

// NewPcapWriter writes the file header to w and returns a writer of
// frames.
func NewPcapWriter(w io.Writer) (*PcapWriter, error) {
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:4], pcapMagic)
	binary.LittleEndian.PutUint16(hdr[4:6], 2) // version 2.4
	binary.LittleEndian.PutUint16(hdr[6:8], 4)
	// thiszone and sigfigs stay 0.
	binary.LittleEndian.PutUint32(hdr[16:20], snapLen)
	binary.LittleEndian.PutUint32(hdr[20:24], linkTypeEthernet)
	if _, err := w.Write(hdr[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &PcapWriter{w: w}, nil
}

// Write appends one frame.
func (p *PcapWriter) Write(f Frame) error {
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(f.Time.Unix()))
	binary.LittleEndian.PutUint32(hdr[4:8], uint32(f.Time.Nanosecond()/1000))
	binary.LittleEndian.PutUint32(hdr[8:12], uint32(len(f.Data)))
	length := max(f.Length, len(f.Data))
	binary.LittleEndian.PutUint32(hdr[12:16], uint32(length))
	if _, err := p.w.Write(hdr[:]); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	if _, err := p.w.Write(f.Data); err != nil {
		return fmt.Errorf("write pcap record: %w", err)
	}
	return nil
}
